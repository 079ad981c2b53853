package testifaces_test

import (
	"context"
	"testing"

	"github.com/astarte-gen/astarte-gen/internal/testifaces"
)

// BenchmarkGeneratedSend measures a generated sender end to end (encode,
// validate, publish at QoS 0 through the fake broker). The encode step
// itself allocates nothing (BenchmarkEncodeTyped in runtime); what is
// counted here is the copy handed to the connection and paho's own
// allocations:
//
//	go test -run '^$' -bench GeneratedSend -benchmem ./internal/testifaces/
func BenchmarkGeneratedSend(b *testing.B) {
	_, d := connectB(b)
	s := testifaces.NewDraft(d)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SendStatusLoadOneMinute(ctx, 0.5); err != nil {
			b.Fatal(err)
		}
	}
}
