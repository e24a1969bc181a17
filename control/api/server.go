package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/eipgw/eipgw/control/model"
)

// APIVersion is the VPC OpenAPI version served.
const APIVersion = "2016-04-28"

// Store is what the server needs of the store.
type Store interface {
	View(func(model.Tx) error) error
	Update(func(model.Tx) error) error
}

// Server serves the RPC API.
type Server struct {
	Verifier *Verifier
	Model    *model.Service
	Store    Store
	// AfterWrite runs after every committed write (the reconciler), before the reply,
	// with the write's action; when it fails, the reply says the change is recorded
	// but not yet carried.
	AfterWrite func(action string) error
	// StaleState, when set, says whether reads may be behind the state (a cluster's
	// store out of reach: reads are served from the gateway's last copy). Such a
	// read's reply carries the header StaleStateHeader.
	StaleState func() bool
	Metrics    *Metrics
	Log        *slog.Logger
	Now        func() time.Time
	// Nonces journals the nonces of reads; nil keeps them in memory only (writes'
	// nonces are stored with the write either way).
	Nonces *NonceJournal
	// Shared, for a cluster, is the store its gateways share: each request's nonce is
	// created there before the request is served, so that a request replayed through
	// another gateway is refused as through this one. A read while that store is out
	// of reach (StaleState) is served without it, as reads are then (docs/cluster.md).
	Shared SharedNonces
}

// apiError is the API's answer to a failed request: the model's or the store's own
// error, or InternalError (logged with its cause).
func (s *Server) apiError(err error, id, action string) *Error {
	var apiErr *Error
	switch {
	case errors.Is(err, model.ErrUnknownAction):
		return errUnknownAction
	case errors.As(err, &apiErr):
		return apiErr
	}
	if s.Log != nil {
		s.Log.Error("api: internal error", "request_id", id, "action", action, "error", err)
	}
	return errInternal
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := strings.ToUpper(hex.EncodeToString(b))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Metric labels for requests whose action is not one to name: an unauthenticated
// request's Action is the client's to choose, so it never becomes a label value.
const (
	actionUnauthenticated = "unauthenticated"
	actionUnknown         = "unknown"
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID()
	var audit auditRecord
	action, status, code, authenticated := s.serve(w, r, id, &audit)
	label := action
	switch {
	case !authenticated:
		label = actionUnauthenticated
	case !model.IsAction(action):
		label = actionUnknown
	}
	s.Metrics.Observe(label, code, status, time.Since(start))
	if s.Log == nil {
		return
	}
	result := code
	if result == "" {
		result = "OK"
	}
	attrs := []any{"request_id", id, "action", label, "status", status, "code", result, "remote", r.RemoteAddr,
		"duration", time.Since(start)}
	switch {
	case authenticated && model.IsWrite(action):
		// The audit trail: who changed what, from where, and how it ended.
		s.Log.Info("audit", append(attrs, "access_key_id", audit.accessKeyID, "resources", audit.resources())...)
	case !authenticated:
		s.Log.Info("api: refused before authentication", attrs...)
	default:
		s.Log.Debug("api", append(attrs, "access_key_id", audit.accessKeyID)...)
	}
}

// auditRecord is what a request's log line says beyond its outcome: who signed it and
// the resources it named or made.
type auditRecord struct {
	accessKeyID string
	params      model.Params
	response    map[string]any
}

// resources are the IDs a request named (parameters ending in Id, as the API spells
// them) and the ones its reply gave (a new AllocationId, say), as Key=Value.
func (a *auditRecord) resources() []string {
	ids := map[string]string{}
	add := func(k, v string) {
		switch k {
		case "RegionId", "RequestId", "AccessKeyId", "OwnerId", "ResourceOwnerId", "ResourceGroupId":
			return
		}
		if strings.HasSuffix(k, "Id") && v != "" {
			ids[k] = v
		}
	}
	for k, v := range a.params {
		add(k, v)
	}
	for k, v := range a.response {
		if s, ok := v.(string); ok {
			add(k, s)
		}
	}
	out := make([]string, 0, len(ids))
	for k, v := range ids {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// headerBytes is roughly what the request line and headers took on the wire.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// serve handles one request and returns what it answered, for metrics and logs, and
// whether its signature was good.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, id string, audit *auditRecord) (action string, status int, code string, authenticated bool) {
	asXML := false // Format=XML, once the form is read
	reply := func(err *Error) (string, int, string, bool) {
		body := map[string]any{"RequestId": id, "Code": err.Code, "Message": err.Message, "HostId": r.Host}
		if asXML {
			writeXML(w, err.Status, "Error", body)
		} else {
			writeJSON(w, err.Status, body)
		}
		return action, err.Status, err.Code, authenticated
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return reply(errMethod)
	}
	if headerBytes(r) > maxRequestHeader {
		return reply(errHeaderTooLarge)
	}
	// The body is read whole first: a V3 signature covers its SHA-256.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return reply(errBodyTooLarge)
		}
		return reply(errorf(http.StatusBadRequest, "InvalidParameter", "The request body cannot be read: %v.", err))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		return reply(errorf(http.StatusBadRequest, "InvalidParameter", "The request body cannot be read: %v.", err))
	}
	switch f := r.Form.Get("Format"); {
	case strings.EqualFold(f, "XML"):
		asXML = true
	case f != "" && !strings.EqualFold(f, "JSON"):
		return reply(errFormat)
	}
	signed, verr := s.Verifier.verify(r, body)
	if verr != nil {
		return reply(verr)
	}
	authenticated = true
	account, action := signed.accessKeyID, signed.action
	if action == "" {
		return reply(errorf(http.StatusBadRequest, "MissingParameter", "The input parameter \"Action\" that is mandatory for processing this request is not supplied."))
	}
	if signed.version != APIVersion {
		return reply(errVersion)
	}
	params := model.Params{}
	for k, v := range r.Form {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	audit.accessKeyID, audit.params = account, params

	nonce := signed.nonce
	write := model.IsWrite(action)
	stale := !write && s.StaleState != nil && s.StaleState()
	// claimed: the nonce is stored in the cluster's store already.
	claimed := false
	if s.Shared != nil && !stale {
		switch err := claimShared(s.Shared, nonce); {
		case err == nil:
			claimed = true
		case errors.Is(err, errNonceUsed) || write:
			return reply(s.apiError(err, id, action))
		default:
			// A read is served from this gateway's copy, as when the store is known to
			// be out of reach; its nonce is journaled below.
			stale = true
			if s.Log != nil {
				s.Log.Warn("api: a read served without claiming its nonce in the shared store", "request_id", id, "error", err)
			}
		}
	}
	var resp any
	run := func(tx model.Tx) error {
		var err error
		if resp, err = s.Model.Do(tx, account, action, params, s.Now()); err != nil {
			return err
		}
		if write && !claimed {
			return putNonce(tx, nonce)
		}
		return nil
	}
	if write {
		err = s.Store.Update(run) // any error, DryRunOperation included, rolls back
	} else {
		if stale {
			w.Header().Set(StaleStateHeader, "true")
		}
		err = s.Store.View(run)
	}
	// A claimed nonce, or a committed write's, is stored; anything else (a read, a
	// refused or rolled-back write) has it journaled.
	if !claimed && (!write || err != nil) && s.Nonces != nil {
		if jerr := s.Nonces.remember(nonce); jerr != nil && s.Log != nil {
			s.Log.Error("api: remember nonce", "request_id", id, "error", jerr)
		}
	}
	if err != nil {
		return reply(s.apiError(err, id, action))
	}
	if write && s.AfterWrite != nil {
		if err := s.AfterWrite(action); err != nil {
			if s.Log != nil {
				s.Log.Error("api: write committed but not applied", "request_id", id, "action", action, "error", err)
			}
			return reply(errNotApplied)
		}
	}
	out, err := withRequestID(resp, id)
	if err != nil {
		return reply(errInternal)
	}
	audit.response = out
	if asXML {
		writeXML(w, http.StatusOK, action+"Response", out)
	} else {
		writeJSON(w, http.StatusOK, out)
	}
	return action, http.StatusOK, "", true
}

// withRequestID turns a response into a JSON object with the RequestId added.
func withRequestID(resp any, id string) (map[string]any, error) {
	raw, ok := resp.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(resp); err != nil {
			return nil, err
		}
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("response is not an object: %w", err)
	}
	m["RequestId"] = id
	return m, nil
}

// StaleStateHeader marks a read served while the state store cannot be reached: the
// reply is the gateway's last copy of the state (docs/cluster.md).
const StaleStateHeader = "X-Eipgw-Stale-State"

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
