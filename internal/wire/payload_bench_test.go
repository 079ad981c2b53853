package wire

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// The two benchmarks encode the same {v: double, t: datetime} payload: with
// the typed Payload the generated senders use, and with bson.Marshal of a
// map, which is what untyped SDKs do. Compare with:
//
//	go test -run '^$' -bench Encode -benchmem ./runtime/

func BenchmarkEncodeTyped(b *testing.B) {
	iface := one(model.Double, true)
	ts := time.UnixMilli(1537449422890)
	var p Payload
	b.ReportAllocs()
	for b.Loop() {
		p.Reset(iface, 0)
		p.Double(16.73)
		if _, err := p.Finish(ts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBSONMarshalMap(b *testing.B) {
	ts := time.UnixMilli(1537449422890)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bson.Marshal(bson.M{"v": 16.73, "t": bson.NewDateTimeFromTime(ts)}); err != nil {
			b.Fatal(err)
		}
	}
}
