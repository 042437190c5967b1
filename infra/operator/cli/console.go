package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/byocloud/byoc/infra/operator/console"
)

func consoleCommand(g *globals) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the web console on this machine (loopback only), calling the API with your AWS credentials",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			c, err := g.clientFor(ctx)
			if err != nil {
				return err
			}
			ln, err := console.Listen(addr)
			if err != nil {
				return usage("--addr: %v", err)
			}
			srv := &http.Server{Handler: console.New(c, ln.Addr().String())}
			fmt.Fprintf(g.out, "byoc console: http://%s/ (API %s). Press Ctrl-C to stop.\n", ln.Addr(), c.Endpoint)
			go func() {
				<-ctx.Done()
				_ = srv.Shutdown(context.Background())
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8765", "loopback address to listen on")
	return cmd
}
