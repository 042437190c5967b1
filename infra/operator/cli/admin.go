package cli

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/byocloud/byoc/infra/operator/apiclient"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/store"
)

// adminCommand holds the one-off migrations an operator runs after upgrading the control
// plane. They act on its table directly, with the operator's own credentials, not through the
// API: no function's role is given the rights they need once.
func adminCommand(g *globals) *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "One-off migrations after an upgrade (act on the control plane's table directly)",
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	admin.AddCommand(&cobra.Command{
		Use:   "backfill-fleet-index",
		Short: "List and count deployments recorded before the fleet index existed",
		Long: "List and count deployments recorded before the fleet index existed.\n\n" +
			"Deployments recorded by a control plane older than the fleet index are not listed or counted\n" +
			"until their record is next written. This gives each of them the index's keys now. It scans the\n" +
			"table (the one scan byoc makes) and writes only records still without the keys, so it may be\n" +
			"run again, and beside a running control plane. Needs cloudformation:DescribeStacks on the\n" +
			"control-plane stack (its " + contract.OutputApiUrl + " and " + contract.OutputTableName + " outputs), and dynamodb:Scan and\n" +
			"dynamodb:UpdateItem on the table.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := g.clientFor(cmd.Context())
			if err != nil {
				return err
			}
			cfg := client.Config()
			table, err := apiclient.StackOutput(cmd.Context(), cfg, g.stack, contract.OutputTableName)
			if err != nil {
				return err
			}
			db := dynamodb.NewFromConfig(cfg)
			n, err := store.New(db, table).BackfillFleetIndex(cmd.Context(), db, func(scanned, updated int) {
				fmt.Fprintf(g.errOut, "scanned %d items, %d deployments given their fleet keys\n", scanned, updated)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%d deployments of table %s are now listed and counted\n", n, table)
			return nil
		},
	})
	return admin
}
