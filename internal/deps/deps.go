// Package deps pins the project's chosen dependencies in go.mod while the
// packages that use them are being written, so that parallel work never
// edits go.mod. Delete it once every dependency is imported for real.
package deps

import (
	_ "github.com/dave/jennifer/jen"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/santhosh-tekuri/jsonschema/v5"
	_ "go.etcd.io/bbolt"
	_ "go.mongodb.org/mongo-driver/v2/bson"
	_ "go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)
