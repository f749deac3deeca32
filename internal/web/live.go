package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Live updates: server-sent events. One poller per process reads each
// watched thing (a customer's checkout, a workflow on the console) every
// livePoll, however many browsers watch it, and pushes what changed to
// each of them; nothing is read while no one watches, and a purchase
// costs nothing more (no write, no query on its path).
const (
	livePoll      = 250 * time.Millisecond // a checkpoint reaches the page within about this
	liveLifetime  = 45 * time.Second       // a stream ends before the server's write timeout; the browser reconnects
	liveRetryMs   = 1000                   // how soon the browser reconnects after a stream ends or breaks
	maxLiveStream = 200                    // streams at once, beyond which the page polls instead (503)
	liveFetchTime = 2 * time.Second
)

// liveHub runs the shared poller.
type liveHub struct {
	logger  *slog.Logger
	mu      sync.Mutex
	topics  map[string]*liveTopic
	streams int
	running bool
}

type liveTopic struct {
	fetch func(context.Context) ([]byte, error)
	last  []byte                   // the last value sent
	subs  map[chan []byte]struct{} // each holds at most the newest value
}

func newLiveHub(logger *slog.Logger) *liveHub {
	return &liveHub{logger: logger, topics: map[string]*liveTopic{}}
}

// subscribe watches topic, read with fetch; the channel receives each new
// value, the newest only when the reader falls behind. It returns false
// when there are maxLiveStream streams already.
func (h *liveHub) subscribe(topic string, fetch func(context.Context) ([]byte, error)) (chan []byte, func(), bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams >= maxLiveStream {
		return nil, nil, false
	}
	h.streams++
	t, ok := h.topics[topic]
	if !ok {
		t = &liveTopic{fetch: fetch, subs: map[chan []byte]struct{}{}}
		h.topics[topic] = t
	}
	ch := make(chan []byte, 1)
	t.subs[ch] = struct{}{}
	if t.last != nil {
		ch <- t.last
	}
	if !h.running {
		h.running = true
		go h.run()
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.streams--
		delete(t.subs, ch)
		if len(t.subs) == 0 {
			delete(h.topics, topic)
		}
	}, true
}

// run polls every watched topic until none is watched.
func (h *liveHub) run() {
	ticker := time.NewTicker(livePoll)
	defer ticker.Stop()
	for {
		h.mu.Lock()
		if len(h.topics) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		topics := make(map[string]*liveTopic, len(h.topics))
		for name, t := range h.topics {
			topics[name] = t
		}
		h.mu.Unlock()
		for name, t := range topics {
			ctx, cancel := context.WithTimeout(context.Background(), liveFetchTime)
			value, err := t.fetch(ctx)
			cancel()
			if err != nil {
				h.logger.Debug("a live update", "topic", name, slog.Any("error", err))
				continue
			}
			h.publish(t, value)
		}
		<-ticker.C
	}
}

func (h *liveHub) publish(t *liveTopic, value []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if bytes.Equal(value, t.last) {
		return
	}
	t.last = value
	for ch := range t.subs {
		select { // replace a value the reader has not taken yet
		case <-ch:
		default:
		}
		ch <- value
	}
}

// serveEvents streams topic's values as server-sent events "update" until
// the client leaves, the stream's lifetime ends or the server drains.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request, topic string, fetch func(context.Context) ([]byte, error)) {
	updates, stop, ok := s.live.subscribe(topic, fetch)
	if !ok {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"error": "too many live streams: poll instead"})
		return
	}
	defer stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the events back
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", liveRetryMs); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		noteFailure(r, fmt.Errorf("streaming events: %w", err))
		return
	}
	lifetime := time.NewTimer(liveLifetime)
	defer lifetime.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.drained:
			return
		case <-lifetime.C:
			return
		case value := <-updates:
			if _, err := fmt.Fprintf(w, "event: update\ndata: %s\n\n", value); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

type checkpointJSON struct {
	Step        int       `json:"step"`
	Name        string    `json:"name"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	Failed      bool      `json:"failed,omitempty"`
}

type progressJSON struct {
	Status          string           `json:"status"`
	Attempts        int              `json:"attempts"`
	CreatedAt       time.Time        `json:"created_at"`
	ServerStartedAt time.Time        `json:"server_started_at"`
	Checkpoints     []checkpointJSON `json:"checkpoints"`
	Order           *orderJSON       `json:"order"`
}

// progress is a checkout's progress as the customer's page reads it.
func (s *Server) progress(ctx context.Context, key string) ([]byte, error) {
	p, err := s.checkout.Progress(ctx, key)
	if err != nil {
		return nil, err
	}
	out := progressJSON{Status: p.Status, Attempts: p.Attempts, CreatedAt: p.CreatedAt, ServerStartedAt: s.startedAt,
		Checkpoints: make([]checkpointJSON, len(p.Checkpoints))}
	for i, c := range p.Checkpoints {
		out.Checkpoints[i] = checkpointJSON(c)
	}
	if p.Order != nil {
		order := toOrderJSON(*p.Order, false) // its customer's, who holds the key: with its payment id
		out.Order = &order
	}
	return json.Marshal(out)
}

// handleProgress handles "GET /api/checkouts/{key}/progress": the
// checkout's checkpoints, for its customer, who alone knows its key.
func (s *Server) handleProgress() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value, err := s.progress(r.Context(), r.PathValue("key"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if _, err := w.Write(append(value, '\n')); err != nil {
			noteFailure(r, err)
		}
	})
}

// handleProgressEvents handles "GET /api/checkouts/{key}/events": the
// checkout's progress, pushed as it changes.
func (s *Server) handleProgressEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		// Answered before the stream starts: an unknown key is a 404, not
		// an empty stream.
		if _, err := s.checkout.Progress(r.Context(), key); err != nil {
			writeError(w, r, err)
			return
		}
		s.serveEvents(w, r, "checkout "+key, func(ctx context.Context) ([]byte, error) { return s.progress(ctx, key) })
	})
}

// handleWorkflowEvents handles "GET /api/workflows/{id}/events" (the
// operator's): the console's view of one workflow, pushed as it changes.
func (s *Server) handleWorkflowEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := validateWorkflowID(id); err != nil {
			writeError(w, r, err)
			return
		}
		if _, err := s.checkout.Workflow(r.Context(), id); err != nil {
			writeError(w, r, err)
			return
		}
		s.serveEvents(w, r, "workflow "+id, func(ctx context.Context) ([]byte, error) {
			d, err := s.checkout.Workflow(ctx, id)
			if err != nil {
				return nil, err
			}
			return json.Marshal(toWorkflowDetailJSON(d, false))
		})
	})
}
