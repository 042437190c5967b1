package cloud_test

import (
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
)

func TestTableNameRefusesAMissingVariable(t *testing.T) {
	_, err := cloud.TableName(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), contract.EnvTableName) {
		t.Fatalf("want an error naming %s, got %v", contract.EnvTableName, err)
	}
	got, err := cloud.TableName(func(k string) string {
		if k == contract.EnvTableName {
			return "byoc-table"
		}
		return ""
	})
	if err != nil || got != "byoc-table" {
		t.Fatalf("TableName = %q, %v; want byoc-table", got, err)
	}
}
