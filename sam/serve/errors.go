package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
)

// StatusClientClosedRequest is nginx's 499: the client went away before
// the answer was ready. Nobody reads it; it is what the logs and the
// metrics record for the request, whose work was stopped.
const StatusClientClosedRequest = 499

// apiError is an error with the HTTP status and the machine-readable code
// that the client gets as {"error": message, "code": code}.
type apiError struct {
	status int
	code   string
	msg    string
	// retryAfter, when > 0, is sent as Retry-After (seconds).
	retryAfter int
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// errQueueFull is returned when the encoder queue has no room.
var errQueueFull = &apiError{status: http.StatusServiceUnavailable, code: "queue_full",
	msg: "the image encoder queue is full: retry later", retryAfter: 1}

// errShuttingDown is returned for work that arrives while the server drains.
var errShuttingDown = &apiError{status: http.StatusServiceUnavailable, code: "shutting_down",
	msg: "the server is shutting down", retryAfter: 1}

// classify maps an error from the model, the decoder of images or a
// context to the status and code the client sees.
func classify(ctx context.Context, err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case ctx.Err() != nil && errors.Is(err, ctx.Err()) || errors.Is(err, context.Canceled) && ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return errorf(http.StatusGatewayTimeout, "timeout", "the request took longer than the server's timeout")
		}
		return errorf(StatusClientClosedRequest, "canceled", "the client went away; the work was stopped")
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, "timeout", "the request took longer than the server's timeout")
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "the request body is over the limit of %d bytes", mbe.Limit)
	case errors.Is(err, imgproc.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_many_pixels", "%v", err)
	case errors.Is(err, imgproc.ErrFormat):
		return errorf(http.StatusUnsupportedMediaType, "not_an_image", "%v", err)
	case errors.Is(err, imgproc.ErrEmpty):
		return errorf(http.StatusBadRequest, "empty_image", "%v", err)
	case errors.Is(err, sam.ErrPrompt):
		return errorf(http.StatusBadRequest, "bad_prompt", "%v", err)
	case errors.Is(err, amg.ErrOptions):
		return errorf(http.StatusBadRequest, "bad_options", "%v", err)
	case errors.Is(err, amg.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "%v", err)
	case errors.Is(err, sam.ErrClosed):
		return errShuttingDown
	case errors.Is(err, sam.ErrNoEncoder):
		return errorf(http.StatusNotImplemented, "no_encoder", "this model has no image encoder: it can only answer prompts on embeddings it already has")
	}
	return errorf(http.StatusInternalServerError, "internal", "%v", err)
}

// writeError answers with err as JSON.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(r.Context(), err)
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(ae.retryAfter))
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.msg, "code": ae.code})
}

// writeJSON answers with v. HTML escaping is off: COCO RLE strings hold
// '<' and '>' (see amg.Record.MarshalJSON).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
