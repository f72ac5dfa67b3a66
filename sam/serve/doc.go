// Package serve is `sam serve`: an HTTP API and a web app for interactive
// segmentation with Segment Anything, over one loaded sam.Model.
//
// The shape of a request is SAM's own: the image encoder runs once per
// image (POST /v1/images), the embedding is cached, and every click is a
// prompt answered by the mask decoder alone on the cached embedding
// (POST /v1/images/{id}/predict), in milliseconds.
//
//	client ──► HTTP (auth, CORS, limits, metrics)
//	             │
//	             ├─ upload ──► cache? ──hit──► {id, width, height}
//	             │               │miss
//	             │               └─► single flight ──► encoder queue (bounded, N workers) ──► cache (memory → disk → Redis)
//	             │
//	             └─ predict ──► cache (embedding) ──► sam.Predictor (pooled, decoder slots) ──► masks (PNG | COCO RLE | polygon)
//
// Files: server.go (Options, Server, routing, the predictor pool,
// shutdown), handlers.go (the API), encoder.go (the encoder queue and
// single flight), cache.go and lru.go (the embedding cache's tiers),
// redis.go (the shared tier), masks.go (mask encodings), metrics.go
// (Prometheus), errors.go (JSON errors), web/ (the embedded web app),
// openapi.yaml (the API, served at /v1/openapi.yaml; openapi_test.go
// keeps it in step with the routes), doc/ (the README's screenshot).
//
// Decoder requests never wait behind encoder work: encoding goes through
// a bounded queue served by its own workers, and a full queue is refused
// at once (503 with Retry-After) instead of holding the request. Requests
// are cancelled when their client goes away, and the work stops with them
// (the encoder when no one waits for its image any more).
package serve
