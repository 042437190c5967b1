package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// S3 is a small client of the S3 REST API for the one thing byoc does to a customer's bucket
// outside CloudFormation: deleting it with its objects, when a teardown is asked to delete
// the customer's data (the infrastructure stack retains the bucket). Hand-written like EC2:
// the SDK's service/s3 package costs far more to build than these three calls (list, delete
// an object, delete the bucket), path-style, signed with the SDK's signer.
type S3 struct {
	cfg      aws.Config
	endpoint string
	signer   *v4.Signer
}

// NewS3 returns the client of cfg's region and credentials (endpoint: AWS_ENDPOINT_URL_S3,
// cfg's BaseEndpoint, or S3's regional endpoint).
func NewS3(cfg aws.Config) *S3 {
	return &S3{cfg: cfg, endpoint: endpointOf(cfg, "s3"), signer: v4.NewSigner()}
}

// S3Error is an error S3 answered.
type S3Error struct {
	Status  int
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func (e *S3Error) Error() string        { return fmt.Sprintf("S3: %s: %s", e.Code, e.Message) }
func (e *S3Error) ErrorCode() string    { return e.Code }
func (e *S3Error) ErrorMessage() string { return e.Message }
func (e *S3Error) HTTPStatusCode() int  { return e.Status }

// DeleteBucket deletes up to max objects of the bucket and, once it is empty, the bucket.
// It reports whether the bucket is gone (a bucket that does not exist is gone); a caller
// loops until it is, each call bounded in time.
func (c *S3) DeleteBucket(ctx context.Context, bucket string, max int) (gone bool, err error) {
	var list struct {
		Contents []struct {
			Key string `xml:"Key"`
		} `xml:"Contents"`
		IsTruncated bool `xml:"IsTruncated"`
	}
	q := url.Values{"list-type": {"2"}, "max-keys": {fmt.Sprint(max)}}
	if err := c.do(ctx, http.MethodGet, "/"+bucket, q, &list); err != nil {
		if IsS3Missing(err) {
			return true, nil
		}
		return false, err
	}
	for _, o := range list.Contents {
		if err := c.do(ctx, http.MethodDelete, "/"+bucket+"/"+escapeKey(o.Key), nil, nil); err != nil && !IsS3Missing(err) {
			return false, err
		}
	}
	if len(list.Contents) > 0 {
		return false, nil
	}
	if err := c.do(ctx, http.MethodDelete, "/"+bucket, nil, nil); err != nil && !IsS3Missing(err) {
		return false, err
	}
	return true, nil
}

// BucketExists reports whether the bucket exists (HEAD).
func (c *S3) BucketExists(ctx context.Context, bucket string) (bool, error) {
	err := c.do(ctx, http.MethodHead, "/"+bucket, nil, nil)
	if IsS3Missing(err) {
		return false, nil
	}
	return err == nil, err
}

// IsS3Missing recognises "no such bucket" and "no such key".
func IsS3Missing(err error) bool {
	if e, ok := err.(*S3Error); ok {
		return e.Code == "NoSuchBucket" || e.Code == "NoSuchKey" || e.Status == http.StatusNotFound
	}
	return false
}

func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

var emptyPayload = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

func (c *S3) do(ctx context.Context, method, path string, q url.Values, out any) error {
	target := c.endpoint + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return err
	}
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("S3: credentials: %w", err)
	}
	req.Header.Set("X-Amz-Content-Sha256", emptyPayload)
	if err := c.signer.SignHTTP(ctx, creds, req, emptyPayload, "s3", c.cfg.Region, time.Now()); err != nil {
		return err
	}
	client := c.cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return &unsettled{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return &unsettled{err: err}
	}
	if resp.StatusCode >= 300 {
		e := &S3Error{Status: resp.StatusCode}
		_ = xml.Unmarshal(body, e)
		if e.Code == "" {
			e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(body))
		}
		return e
	}
	if out != nil {
		return xml.Unmarshal(body, out)
	}
	return nil
}
