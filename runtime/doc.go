// Package runtime is the device side of astarte-gen: a Device speaks the
// Astarte MQTT v1 protocol for the typed packages astarte-gen generates (and
// for programs that send dynamically, see Device.Send).
//
// Interfaces are described by package model (runtime/model): generated
// packages return them from Interfaces(), schema.Parse builds them from
// JSON. A Device keeps its own copies.
//
//	d, err := runtime.New(cfg, sensors.Interfaces()...)
//	sensors.RegisterCommands(d, myHandler{})      // before Connect
//	err = d.Connect(ctx)                           // pairs, connects, synchronises
//	err = sensors.NewSensors(d).SendTemperature(ctx, "s1", 21.5, time.Now())
//	err = d.Flush(ctx)                             // wait for acknowledgements
//	err = d.Close(ctx)
//
// # Lifecycle
//
// New validates the configuration and the interfaces and opens the store;
// it does no network I/O. Register handlers (generated Register functions,
// or Device.Handle), then Connect: it pairs when needed, connects, runs the
// connect sequence and returns once the device is synchronised. From then
// on the device reconnects by itself, with jittered backoff, until Close.
// Send and set values at any time; Flush waits until what is queued has
// been acknowledged; Close releases everything.
//
// # States and who owns what
//
// A Device is Disconnected, Connecting, Connected or Closed (State; Status
// adds when, the credentials and why the last connection ended, and
// Config.OnStateChange receives it on every change). One goroutine, the owner loop, owns everything that
// belongs to a connection: it dials, runs the connect sequence, decides what
// to publish next (property changes, then volatile data, then the stored
// queue in order, then discard-retention messages), keeps the in-flight
// window (Config.MaxInFlight), and applies acknowledgements. Each
// connection has a writer goroutine that alone calls paho's Publish, so
// that a write stuck on a dying socket never holds up the owner loop or a
// caller. The MQTT session state (packet identifiers and unfinished QoS 1
// and 2 flows) belongs to the device, not to a connection: when the broker
// kept the session, the next connection replays those flows with their
// identifiers, so a unique (QoS 2) message is delivered once; when the
// broker lost it, their messages are requeued as their retention says.
// Across restarts the store keeps a packet-identifier floor (raised in the
// background as identifiers advance) and, after Close, every unfinished
// QoS 2 flow, so that a clean restart releases only those.
//
// Callers never touch connection state. What each call does in each state:
//
//   - Send of a stored-retention value commits it to the store and returns
//     (nil means it is queued and will be delivered at least once; an error
//     means it was not queued). It never waits for the network. With
//     Config.SyncInterval the store is flushed to the disk periodically
//     instead of at each Send. A full queue drops its expired messages
//     first, then refuses (ErrQueueFull) or drops its oldest
//     (Config.StoredQueueFull); QueueStats counts.
//   - Send of a volatile value queues it in memory (bounded; when full the
//     expired, then the oldest are dropped and counted) and returns nil.
//   - Send of a discard-retention value returns ErrNotConnected unless the
//     device is Connected; it then hands the value to the connection's
//     writer and returns, waiting at most until its context ends.
//   - Setting or unsetting a device property commits it to the store; the
//     latest value of each property is sent when connected (intermediate
//     values may be coalesced), and every set property again after a
//     session loss.
//   - Flush waits, woken by acknowledgements, until nothing is queued or in
//     flight, or its context ends; offline it waits for the reconnection.
//   - Connect and Flush are bounded by their context; Close too (see below).
//   - After Close every method returns ErrClosed, including the property
//     getters of generated code.
//
// # Handlers
//
// Server data is validated, cached (properties) and handed to the
// interface's handler. Handlers run one at a time, in arrival order, on a
// goroutine that runs only while messages wait; their context is cancelled by Close. A slow handler holds up
// the messages behind it, and after 256 waiting messages (or 4 MiB of
// waiting payloads) the connection's reading, which stalls acknowledgements
// and eventually the keep-alive: do long work elsewhere. A handler registered after Connect first receives
// the server properties already cached for its interface. A handler's error
// is reported through Config.OnError as an *Error of kind ErrHandler.
//
// # Errors
//
// Calls return errors that wrap sentinels (ErrInvalidValue,
// ErrQueueFull, ErrNotConnected, ErrClosed, ...) with the interface, path
// and value; test them with errors.Is. What has no caller to return to
// (invalid server data, handler errors, dead letters, failed connection
// attempts) goes to Config.OnError as an *Error carrying its kind,
// interface, path and cause. When Connect gives up, its error wraps both
// its context's error and the last attempt's cause.
//
// # Refused messages
//
// Astarte answers a message it refuses (an interface the realm has in an
// older minor, a corrupted entry) by dropping the connection and discarding
// the session. After such a loss with stored data in flight, the device
// sends the head of the stored queue alone; if the same happens again
// Config.MaxRefusals times in a row, that message is moved to the dead
// letters (Device.DeadLetters, Device.DeleteDeadLetter), reported through
// OnError, and the rest of the queue goes on.
//
// # Credentials
//
// The device pairs by itself (or registers itself first, with
// Config.PairingToken) and then connects first: a stored, unexpired
// certificate and broker URL need no Pairing API request. It asks the
// Pairing API when the broker refuses the certificate and when renewal is
// due; a refused renewal (credentials inhibited, API down) keeps the
// certificate in use and is retried with a growing delay.
//
// # Interfaces at run time
//
// AddInterfaces and RemoveInterfaces change the interface set of a running
// device in the protocol's order: an added interface is usable once the
// broker acknowledged the new introspection; a removed one is refused at
// once and its queued data dropped.
//
// # Generated code
//
// Generated packages call a small set of entry points that exist for them
// alone: GeneratedMessage (a Message exposes only typed setters and Send,
// so it cannot be re-targeted), GeneratedUnset, GeneratedProperty and
// GeneratedProperties, plus Device.Handle. They refer to mappings by index
// in the generated package's own descriptor, which the device matches by
// name, major and minor. Generated code pins the API it was made for with
// SupportPackageIsVersion2; code generated for another version does not
// build, and the error names the fix (regenerate with the astarte-gen of
// this module).
//
// # Close
//
// Close cancels the handlers' context, ends the connection, waits for the
// device's goroutines and releases the store, even when its context ends
// first (it then returns an error naming what was still running, typically
// a handler that ignores its context). A second Close returns ErrClosed.
package runtime
