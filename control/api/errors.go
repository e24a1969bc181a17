// Package api serves the VPC OpenAPI (version 2016-04-28, RPC style) over HTTP:
// signature v1 verification, parameter decoding, dispatch to the model, and JSON
// replies and errors as the cloud's SDKs expect them.
package api

import (
	"fmt"
	"net/http"

	"github.com/eipgw/eipgw/control/model"
)

// Error is an API error as the cloud returns it: a Code the SDKs branch on, a
// Message for people, and an HTTP status. The model's rule violations are the same
// type.
type Error = model.Error

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Signature and request errors (the cloud's common error codes).

// errV3SignatureMismatch carries the string eipd signed, as the cloud's answer does,
// so that a client can compare it with its own.
func errV3SignatureMismatch(stringToSign string) *Error {
	return errorf(http.StatusBadRequest, "SignatureDoesNotMatch",
		"Specified signature does not match our calculation. server string to sign is:%s", stringToSign)
}

func errUnsupportedSignature(scheme string) *Error {
	return errorf(http.StatusBadRequest, "InvalidSignatureMethod",
		"The Authorization header's method %q is not supported: sign with ACS3-HMAC-SHA256 (signature V3), or with HMAC-SHA1 in the parameters (signature V2).", scheme)
}
func errIncompleteSignature(missing string) *Error {
	return errorf(http.StatusBadRequest, "IncompleteSignature", "The request signature does not conform to the standard: %s is missing.", missing)
}

var (
	errSignatureMismatch = errorf(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
	errNonceUsed         = errorf(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
	errTimestampExpired  = errorf(http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
	errTimestampFormat   = errorf(http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
	errAccessKeyNotFound = errorf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	errSignatureMethod   = errorf(http.StatusBadRequest, "InvalidSignatureMethod", "Specified signature method is not supported: sign with ACS3-HMAC-SHA256 in an Authorization header (signature V3), or with SignatureMethod HMAC-SHA1 and SignatureVersion 1.0 (signature V2).")
	errBodyHashMismatch  = errorf(http.StatusBadRequest, "SignatureDoesNotMatch", "The x-acs-content-sha256 header is not the SHA-256 of the request body.")
	errNonceCacheFull    = errorf(http.StatusServiceUnavailable, "Throttling", "Too many signed requests in the timestamp window; try again later.")
	errUnknownAction     = errorf(http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
	errVersion           = errorf(http.StatusBadRequest, "InvalidVersion", "Specified parameter Version is not valid: this service speaks 2016-04-28.")
	errFormat            = errorf(http.StatusBadRequest, "InvalidParameter.Format", "Format must be JSON (the default) or XML.")
	errMethod            = errorf(http.StatusMethodNotAllowed, "UnsupportedHTTPMethod", "Use GET or POST.")
	errInternal          = errorf(http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error.")
	errHeaderTooLarge    = errorf(http.StatusRequestHeaderFieldsTooLarge, "RequestHeaderFieldsTooLarge",
		"The request line and headers exceed 64 KiB: send parameters in a form body.")
	errBodyTooLarge = errorf(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body exceeds 1 MiB.")
	// The write committed, but the dataplane has not carried it yet: the resource
	// shows its transitional status (Associating, Unassociating) until a later pass
	// does, which the gateway retries on its own.
	errNotApplied = errorf(http.StatusServiceUnavailable, "ServiceUnavailable",
		"The change is recorded but the gateway's dataplane could not apply it yet; it keeps retrying, and the resource's status says when it is carried.")
)
