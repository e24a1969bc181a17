// Command sdkv3 makes one VPC API call with the cloud's current Go SDK
// (alibabacloud-go/vpc-20160428/v6 over darabonba-openapi/v2), configured as a new
// user would: an endpoint, an AccessKey pair and a region, nothing else. The SDK
// then signs with ACS3-HMAC-SHA256 and speaks HTTPS, trusting the system's roots
// (SSL_CERT_FILE). The end-to-end tests run it inside a namespace, one call a run:
//
//	sdkv3 ENDPOINT ACTION [Name=value ...]
//
// with ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET set. It prints
// the reply's body as JSON, or the error's code and exits 1.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	vpc "github.com/alibabacloud-go/vpc-20160428/v6/client"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: sdkv3 ENDPOINT ACTION [Name=value ...]")
		os.Exit(2)
	}
	client, err := vpc.NewClient(&openapiutil.Config{
		Endpoint:        dara.String(os.Args[1]),
		AccessKeyId:     dara.String(os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID")),
		AccessKeySecret: dara.String(os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")),
		RegionId:        dara.String("eipgw-1"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkv3: client:", err)
		os.Exit(2)
	}
	p := map[string]string{}
	for _, kv := range os.Args[3:] {
		k, v, _ := strings.Cut(kv, "=")
		p[k] = v
	}
	body, err := call(client, os.Args[2], p)
	if err != nil {
		// The SDK answers an API error with a tea.SDKError carrying the API's code.
		var sdkErr *tea.SDKError
		if errors.As(err, &sdkErr) {
			fmt.Printf("%s\n", tea.StringValue(sdkErr.Code))
		}
		fmt.Fprintf(os.Stderr, "sdkv3: %T: %v\n", err, err)
		os.Exit(1)
	}
	out, _ := json.Marshal(body)
	fmt.Println(string(out))
}

// opt is a parameter as the SDK's request structs take it: nil when absent.
func opt(p map[string]string, k string) *string {
	if v, ok := p[k]; ok {
		return dara.String(v)
	}
	return nil
}

func call(c *vpc.Client, action string, p map[string]string) (any, error) {
	region := dara.String("eipgw-1")
	switch action {
	case "AllocateEipAddress":
		r, err := c.AllocateEipAddress(&vpc.AllocateEipAddressRequest{RegionId: region, Bandwidth: opt(p, "Bandwidth"),
			InternetChargeType: opt(p, "InternetChargeType"), Name: opt(p, "Name"), IpAddress: opt(p, "IpAddress")})
		return body(r, err)
	case "AssociateEipAddress":
		r, err := c.AssociateEipAddress(&vpc.AssociateEipAddressRequest{RegionId: region, AllocationId: opt(p, "AllocationId"),
			InstanceId: opt(p, "InstanceId"), InstanceType: opt(p, "InstanceType")})
		return body(r, err)
	case "DescribeEipAddresses":
		r, err := c.DescribeEipAddresses(&vpc.DescribeEipAddressesRequest{RegionId: region, AllocationId: opt(p, "AllocationId")})
		return body(r, err)
	case "ModifyEipAddressAttribute":
		r, err := c.ModifyEipAddressAttribute(&vpc.ModifyEipAddressAttributeRequest{RegionId: region, AllocationId: opt(p, "AllocationId"),
			Bandwidth: opt(p, "Bandwidth"), Description: opt(p, "Description")})
		return body(r, err)
	case "UnassociateEipAddress":
		r, err := c.UnassociateEipAddress(&vpc.UnassociateEipAddressRequest{RegionId: region, AllocationId: opt(p, "AllocationId"),
			InstanceId: opt(p, "InstanceId")})
		return body(r, err)
	case "ReleaseEipAddress":
		r, err := c.ReleaseEipAddress(&vpc.ReleaseEipAddressRequest{RegionId: region, AllocationId: opt(p, "AllocationId")})
		return body(r, err)
	}
	return nil, fmt.Errorf("action %s is not one this helper makes", action)
}

// body is a reply's Body, the part the API answered.
func body[R interface{ GetBody() B }, B any](r R, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return r.GetBody(), nil
}
