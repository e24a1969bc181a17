package api

import (
	"bytes"
	"encoding/xml"
	"maps"
	"net/http"
	"slices"
	"strconv"
)

// writeXML answers v as the cloud answers Format=XML: a root element (the action's
// name and "Response", or "Error"), an element per object member, the elements of
// an array repeated under the array's own name, members in name order.
func writeXML(w http.ResponseWriter, status int, root string, v map[string]any) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	appendXML(&b, root, v)
	w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func appendXML(b *bytes.Buffer, name string, v any) {
	if list, ok := v.([]any); ok {
		for _, item := range list {
			appendXML(b, name, item)
		}
		return
	}
	b.WriteString("<" + name + ">")
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			appendXML(b, k, v[k])
		}
	case string:
		_ = xml.EscapeText(b, []byte(v))
	case float64:
		b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
	}
	b.WriteString("</" + name + ">")
}
