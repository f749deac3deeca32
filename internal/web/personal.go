package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/widgetstore/widgetstore/internal/store"
)

// The console shows what DBOS recorded of a checkout: its input (the
// request, with the customer's email and address, for checkouts that
// recorded them) and its steps' outputs (the order, with its email). It
// masks them for every operator, unless one asks to see them, which is
// written to the audit log (POST /api/workflows/{id}/reveal).

// personalFields are the JSON fields of those records that hold a
// customer's personal data, with how each is masked.
var personalFields = map[string]func(string) string{
	"Email": maskEmail, "email": maskEmail,
	"Client": maskAddress, "client": maskAddress,
}

// mask is what is left of a masked value.
const mask = "•••"

// maskEmail keeps an address's first letter and its domain:
// a•••@example.com.
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return mask
	}
	return local[:1] + mask + "@" + domain
}

// maskAddress keeps the network of a client's IP address, its first two
// bytes (IPv4) or groups (IPv6): 203.0.•••.
func maskAddress(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil {
		return mask
	}
	if v4 := ip.To4(); v4 != nil {
		return fmt.Sprintf("%d.%d.%s", v4[0], v4[1], mask)
	}
	return fmt.Sprintf("%x:%x:%s", uint16(ip[0])<<8|uint16(ip[1]), uint16(ip[2])<<8|uint16(ip[3]), mask)
}

// maskPersonal masks the personal fields of a recorded JSON value, at any
// depth. What does not parse is hidden whole: it might hold them.
func maskPersonal(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber() // amounts and ids stay as they were written
	var v any
	if err := decoder.Decode(&v); err != nil {
		return json.RawMessage(`"` + mask + `"`)
	}
	masked, err := json.Marshal(maskValue(v))
	if err != nil {
		return json.RawMessage(`"` + mask + `"`)
	}
	return masked
}

func maskValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for key, value := range v {
			if maskField, ok := personalFields[key]; ok {
				if text, ok := value.(string); ok && text != "" {
					v[key] = maskField(text)
				}
				continue
			}
			v[key] = maskValue(value)
		}
	case []any:
		for i := range v {
			v[i] = maskValue(v[i])
		}
	}
	return v
}

// handleWorkflowReveal handles "POST /api/workflows/{id}/reveal": the
// workflow as GET /api/workflows/{id} shows it, its customer's data
// unmasked; the reveal is written to the audit log.
func (s *Server) handleWorkflowReveal() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := validateWorkflowID(id); err != nil {
			writeError(w, r, err)
			return
		}
		d, err := s.checkout.Workflow(r.Context(), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		s.recordAction(r, store.OperatorAction{Action: "reveal", WorkflowID: id, Detail: "the customer's data", Outcome: "done"})
		s.logger.Info("an operator revealed a customer's data", "workflow", id, "actor", actorOf(r))
		writeJSON(w, r, http.StatusOK, toWorkflowDetailJSON(d, true))
	})
}
