package cfnengine

// HTTPAPI is an HTTP API (API Gateway v2) a vendor stack deployed, as the local cloud's API
// gateway serves it: its routes and the Lambda integration they proxy to.
type HTTPAPI struct {
	ID     string
	Routes []HTTPRoute
}

// HTTPRoute is one route: its key ("ANY /v1/{proxy+}"), its authorization (AWS_IAM or NONE)
// and the function its AWS_PROXY integration invokes (payload format 2.0).
type HTTPRoute struct {
	Key           string
	Authorization string
	FunctionArn   string
}

// HTTPAPIs returns the HTTP APIs of the vendor account's stacks.
func (e *Engine) HTTPAPIs() []HTTPAPI {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []HTTPAPI
	for _, s := range e.stacks {
		if !e.isVendor(s.account) || s.status == "DELETE_COMPLETE" {
			continue
		}
		integrations := map[string]string{} // integration id -> function ARN
		for _, r := range s.resources {
			if r.typ == "AWS::ApiGatewayV2::Integration" {
				uri, _ := r.props["IntegrationUri"].(string)
				integrations[refOf(r)] = uri
			}
		}
		for _, r := range s.resources {
			if r.typ != "AWS::ApiGatewayV2::Api" {
				continue
			}
			api := HTTPAPI{ID: refOf(r)}
			for _, rt := range s.resources {
				if rt.typ != "AWS::ApiGatewayV2::Route" || rt.props["ApiId"] != api.ID {
					continue
				}
				key, _ := rt.props["RouteKey"].(string)
				auth, _ := rt.props["AuthorizationType"].(string)
				target, _ := rt.props["Target"].(string)
				api.Routes = append(api.Routes, HTTPRoute{Key: key, Authorization: auth, FunctionArn: integrations[trimPrefix(target, "integrations/")]})
			}
			out = append(out, api)
		}
	}
	return out
}

// refOf is a resource's Ref: what other resources' properties name it by.
func refOf(r *liveResource) string {
	s, _ := r.facts.Ref.(string)
	return s
}

func trimPrefix(s, prefix string) string {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	return s
}
