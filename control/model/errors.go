// Package model holds eipgw's resources (EIPs and the instances, ENIs, HaVips, load
// balancers and NAT gateways they associate with) and enforces every rule of the
// reference documents, answering with the cloud API's own error codes. It knows
// nothing of BPF or HTTP: it reads and writes through a Tx.
package model

import (
	"fmt"
	"net/http"
)

// Error is a rule violation as the API reports it.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func fail(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *Error {
	return fail(http.StatusBadRequest, code, format, args...)
}

func missing(param string) *Error {
	return badRequest("MissingParameter", "The input parameter %q that is mandatory for processing this request is not supplied.", param)
}

func invalid(param, value string) *Error {
	return badRequest("InvalidParameter", "The specified parameter %q is not valid: %q.", param, value)
}

// Codes of the reference API (VPC 2016-04-28), as its error tables name them.
var (
	errEipNotFound       = fail(http.StatusNotFound, "InvalidAllocationId.NotFound", "Specified allocation ID is not found.")
	errIncorrectEip      = badRequest("IncorrectEipStatus", "Current elastic IP status does not support this operation.")
	errDuplicated        = badRequest("InvalidAssociation.Duplicated", "Specified instance already is associated.")
	errInstanceNotFound  = fail(http.StatusNotFound, "InvalidInstanId.NotFound", "Specified instance does not exist.")
	errInstanceStatus    = badRequest("IncorrectInstanceStatus", "Current instance status does not support this operation.")
	errNotInVPC          = badRequest("OperationDenied", "Specified instance is not in VPC.")
	errRegionMismatch    = badRequest("InvalidParameter.Mismatch", "Specified elastic IP address and ECS instance are not in the same region.")
	errHasPublicIP       = badRequest("EIP_CAN_NOT_ASSOCIATE_WITH_PUBLIC_IP", "instance already bind natpublicip,cannot bind eip.")
	errInstanceType      = badRequest("InvalidInstanceType.ValueNotSupported", "The specified value of InstanceType is not supported.")
	errHaVipStatus       = badRequest("IncorrectHaVipStatus", "HaVip can be operated by this action only when it's status is Available or InUse.")
	errNatQuota          = badRequest("QuotaExceeded.NumberOfEip", "Binded eip Quota exceed on this NatGw.")
	errEniAttached       = badRequest("Eni.Attached", "The eni should be detached from ecs when associating with direct eip.")
	errEniHasSubIP       = badRequest("Eni.HasSubIp", "Eni has sub ip can not bind direct eip.")
	errDirectEipBindType = badRequest("Invalid.DirectEip.BindType", "The direct eip can be only associated with eni.")
	errModeConflict      = badRequest("OperationFailed.EipBindModeConflict", "Eips can not bind Eni with NAT mode and MULTI_BINDED mode at the same time.")
	errMultiBindedQuota  = badRequest("QuotaExceed.MultiBindedEip", "The number of multi binded eip is over limit.")
	errBandwidth         = badRequest("InvalidBandwidth.ValueNotSupported", "The specified value of Bandwidth not supported.")
	errDryRun            = badRequest("DryRunOperation", "Request validation has been passed with DryRun flag set.")
	// Not in the reference tables (the cloud has no such case, or does not document
	// it); named in the same style and listed in docs/api.md.
	errPoolExhausted     = badRequest("QuotaExceeded.Eip", "No address is left in the EIP pool.")
	errIPNotRecoverable  = badRequest("InvalidIpAddress.NotRecoverable", "The specified IpAddress is not in the pool, in use, or not released by this account in the last 7 days.")
	errPrimaryEniOnly    = badRequest("InvalidParameter.EniType", "The operation needs a secondary ENI.")
	errPrivateIPNotOnEni = badRequest("InvalidParameter.PrivateIpAddress", "The specified PrivateIpAddress does not belong to the ENI.")
	errNoENIMAC          = badRequest("OperationDenied.EniMacUnknown", "A cut-through EIP needs the ENI's MacAddress (CreateNetworkInterface MacAddress).")
	errAlreadyExists     = badRequest("InvalidParameter.AlreadyExists", "A resource with the specified ID already exists.")
)

// What a store shared by a cluster of gateways (etcd) answers a write that another
// gateway's write overtook (nothing was written: the request can be sent again), and
// any request while it cannot be reached (the dataplanes keep forwarding).
var (
	ErrStoreConflict    = fail(http.StatusConflict, "OperationConflict", "Another write changed the state at the same time; nothing was changed: send the request again.")
	ErrStoreUnavailable = fail(http.StatusServiceUnavailable, "ServiceUnavailable.StateStore", "The state store cannot be reached: the request was not served; traffic is not affected.")
)

func notFound(kind, id string) *Error {
	return fail(http.StatusNotFound, "Invalid"+kind+"Id.NotFound", "Specified %s %q does not exist.", kind, id)
}
