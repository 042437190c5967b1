package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/servicestate"
)

// Teardown's disconnect of a data plane leaves its exporter no way in: once it returns, the
// state queue refuses the exporter's messages (so no sender verification cached by
// stateingest can outlive the removal), the command channel is gone (a command is
// NoChannel, and nothing is recorded), and another deployment's exporter still reports.
func TestDisconnectedExporterCanNoLongerReport(t *testing.T) {
	st := state(t)
	gone, kept := onboard(t), onboard(t)
	ctx := context.Background()
	st.send(t, gone.exporter(t), encode(t, gone.report("svc-a", 1)))

	vendorSQS := sqs.NewFromConfig(shared.cloud.WatchConfig())
	if err := channel.Disconnect(ctx, vendorSQS, st.repo, st.queueURL, gone.dep.ID); err != nil {
		t.Fatal(err)
	}
	if err := channel.Disconnect(ctx, vendorSQS, st.repo, st.queueURL, gone.dep.ID); err != nil {
		t.Fatalf("a repeated disconnect: %v", err)
	}
	_, err := gone.exporter(t).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(st.queueURL), MessageBody: aws.String(encode(t, gone.report("svc-a", 2)))})
	if !isAccessDenied(err) {
		t.Errorf("the disconnected exporter's message: %v, want AccessDenied", err)
	}
	if _, err := st.repo.DataPlane(ctx, gone.dep.ID); !servicestate.IsNotFound(err) {
		t.Errorf("the data plane is still registered: %v", err)
	}
	sender := &channel.Sender{SQS: vendorSQS, Recorder: st.repo}
	_, err = sender.Send(ctx, channel.Command{ID: "after-disconnect", DeploymentID: gone.dep.ID, ServiceID: "svc-a", Kind: channel.Start, IssuedAt: time.Now()})
	if !errors.Is(err, channel.ErrNoChannel) {
		t.Errorf("a command after the disconnect: %v, want ErrNoChannel", err)
	}
	if _, err := st.repo.Command(ctx, gone.dep.ID, "after-disconnect"); !servicestate.IsNotFound(err) {
		t.Errorf("the refused command was recorded: %v", err)
	}
	// The other deployment is untouched.
	st.send(t, kept.exporter(t), encode(t, kept.report("svc-a", 1)))
}
