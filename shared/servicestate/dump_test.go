package servicestate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// dump renders items in a stable order for comparison.
func dump(items []map[string]types.AttributeValue) string {
	var lines []string
	for _, it := range items {
		var attrs []string
		for k, v := range it {
			attrs = append(attrs, k+"="+render(v))
		}
		slices.Sort(attrs)
		lines = append(lines, strings.Join(attrs, " "))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func render(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return fmt.Sprintf("%q", v.Value)
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprint(v.Value)
	case *types.AttributeValueMemberNULL:
		return "null"
	case *types.AttributeValueMemberM:
		var parts []string
		for k, x := range v.Value {
			parts = append(parts, k+":"+render(x))
		}
		slices.Sort(parts)
		return "{" + strings.Join(parts, ",") + "}"
	case *types.AttributeValueMemberL:
		parts := make([]string, len(v.Value))
		for i, x := range v.Value {
			parts[i] = render(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprintf("%T", v)
}
