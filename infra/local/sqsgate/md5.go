package sqsgate

import (
	"crypto/md5" //nolint:gosec // SQS's digest of message attributes is MD5 by definition
	"encoding/binary"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// MessageAttributesMD5 is SQS's MD5OfMessageAttributes: attributes sorted by name, each
// encoded as name, data type and transport type (1 string or number, 2 binary) followed by
// the value, every string and value prefixed by its 4-byte big-endian length. It is "" for
// no attributes (SQS then sends no digest).
func MessageAttributesMD5(attrs map[string]sqstypes.MessageAttributeValue) string {
	if len(attrs) == 0 {
		return ""
	}
	h := md5.New() //nolint:gosec // see the import
	put := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		a := attrs[name]
		dataType := aws.ToString(a.DataType)
		put([]byte(name))
		put([]byte(dataType))
		if strings.HasPrefix(dataType, "Binary") {
			h.Write([]byte{2})
			put(a.BinaryValue)
		} else {
			h.Write([]byte{1})
			put([]byte(aws.ToString(a.StringValue)))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
