package inference

import (
	"errors"
	"fmt"
)

// A minimal protobuf wire-format reader: just enough to read the SignatureDefs out of a MetaGraphDef, so the
// package needs no generated protobuf code (standard library only).

var errTruncated = errors.New("truncated protobuf message")

// protoField is one field of a message: its number, wire type, and the varint value or the length-delimited bytes.
type protoField struct {
	num   int
	wire  int
	value uint64
	bytes []byte
}

func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errTruncated
}

// protoFields splits a serialized message into its fields, in order.
func protoFields(b []byte) ([]protoField, error) {
	var fields []protoField
	for len(b) > 0 {
		key, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := protoField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0: // varint
			f.value, n, err = readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
		case 1: // fixed64
			if len(b) < 8 {
				return nil, errTruncated
			}
			b = b[8:]
		case 2: // length-delimited
			size, n, err := readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
			if size > uint64(len(b)) {
				return nil, errTruncated
			}
			f.bytes, b = b[:size], b[size:]
		case 5: // fixed32
			if len(b) < 4 {
				return nil, errTruncated
			}
			b = b[4:]
		default:
			return nil, fmt.Errorf("unsupported protobuf wire type %d", f.wire)
		}
		fields = append(fields, f)
	}
	return fields, nil
}

// protoMap reads a map<string, message> field's entries (entry: key = 1, value = 2) into key -> value bytes.
func protoMap(fields []protoField, num int) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, f := range fields {
		if f.num != num || f.wire != 2 {
			continue
		}
		entry, err := protoFields(f.bytes)
		if err != nil {
			return nil, err
		}
		var key string
		var value []byte
		for _, e := range entry {
			switch {
			case e.num == 1 && e.wire == 2:
				key = string(e.bytes)
			case e.num == 2 && e.wire == 2:
				value = e.bytes
			}
		}
		out[key] = value
	}
	return out, nil
}

// tensorInfos reads map<string, TensorInfo> field num of a SignatureDef; TensorInfo.name (field 1) is "op:index".
func tensorInfos(fields []protoField, num int) (map[string]tensorName, error) {
	infos, err := protoMap(fields, num)
	if err != nil {
		return nil, err
	}
	out := map[string]tensorName{}
	for key, raw := range infos {
		info, err := protoFields(raw)
		if err != nil {
			return nil, err
		}
		for _, f := range info {
			if f.num == 1 && f.wire == 2 {
				name, err := parseTensorName(string(f.bytes))
				if err != nil {
					return nil, err
				}
				out[key] = name
			}
		}
	}
	return out, nil
}

// parseSignatures reads MetaGraphDef.signature_def (field 5, map<string, SignatureDef>); SignatureDef.inputs = 1,
// outputs = 2.
func parseSignatures(metaGraphDef []byte) (map[string]signature, error) {
	fields, err := protoFields(metaGraphDef)
	if err != nil {
		return nil, fmt.Errorf("MetaGraphDef: %w", err)
	}
	defs, err := protoMap(fields, 5)
	if err != nil {
		return nil, fmt.Errorf("MetaGraphDef.signature_def: %w", err)
	}
	out := map[string]signature{}
	for key, raw := range defs {
		def, err := protoFields(raw)
		if err != nil {
			return nil, fmt.Errorf("SignatureDef %q: %w", key, err)
		}
		var s signature
		if s.inputs, err = tensorInfos(def, 1); err != nil {
			return nil, fmt.Errorf("SignatureDef %q inputs: %w", key, err)
		}
		if s.outputs, err = tensorInfos(def, 2); err != nil {
			return nil, fmt.Errorf("SignatureDef %q outputs: %w", key, err)
		}
		out[key] = s
	}
	return out, nil
}
