// Package api serves the VPC OpenAPI (version 2016-04-28, RPC style) over HTTP:
// signature v1 verification, parameter decoding, dispatch to the model, and JSON
// replies and errors as the cloud's SDKs expect them.
package api

import (
	"fmt"
	"net/http"
)

// Error is an API error as the cloud returns it: a Code the SDKs branch on, a
// Message for people, and an HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Signature and request errors (the cloud's common error codes).
func errIncompleteSignature(missing string) *Error {
	return errorf(http.StatusBadRequest, "IncompleteSignature", "The request signature does not conform to the standard: %s is missing.", missing)
}

var (
	errSignatureMismatch = errorf(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
	errNonceUsed         = errorf(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
	errTimestampExpired  = errorf(http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
	errTimestampFormat   = errorf(http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
	errAccessKeyNotFound = errorf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	errSignatureMethod   = errorf(http.StatusBadRequest, "InvalidSignatureMethod", "Specified signature method is not supported: use HMAC-SHA1 with SignatureVersion 1.0.")
	errNonceCacheFull    = errorf(http.StatusServiceUnavailable, "Throttling", "Too many signed requests in the timestamp window; try again later.")
)
