package inference

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

// pillowPNG walks a PNG's chunks as Pillow 13's PngImagePlugin does, for what Go's image/png ignores but Pillow acts
// on: chunk checks that make Pillow refuse the file, the tRNS key as Pillow compares it, and the EXIF orientation
// load_rgb applies (ImageOps.exif_transpose's table). Go's decoder then does the pixels.

const (
	pillowMaxTextChunk  = 1024 * 1024             // PngImagePlugin.MAX_TEXT_CHUNK (ImageFile.SAFEBLOCK)
	pillowMaxTextMemory = 64 * pillowMaxTextChunk // PngImagePlugin.MAX_TEXT_MEMORY
)

// pngFacts is what the chunk walk learned.
type pngFacts struct {
	width, height    int
	depth, colorType int
	paletteSize      int       // PLTE entries
	hasKey           bool      // a tRNS colour key on a grey or truecolour image
	key              [3]uint16 // the key as Pillow stores it (grey: key[0])
	orientation      int       // EXIF orientation, 1 = none
}

// keyAlpha is the alpha Pillow gives a pixel of a grey or truecolour image with a tRNS key. r, g, b are the decoded
// samples: 8-bit values for bit depths up to 8 (low depths already scaled to 0..255), 16-bit values for depth 16.
// Pillow's convert_transparent compares the 8-bit pixel (a 16-bit RGB pixel's high bytes) with the key's LOW byte
// (rgbT2rgba masks it with 0xff), and the raw key, not the key scaled to 0..255 as the PNG spec and Go's decoder do
// for 2- and 4-bit grey; mode "1" maps any non-zero key to white; 16-bit grey (numpy) compares all 16 bits.
func (f *pngFacts) keyAlpha(r, g, b uint16) uint8 {
	match := false
	switch {
	case f.colorType == 0 && f.depth == 1:
		key := uint16(0)
		if f.key[0] != 0 {
			key = 255
		}
		match = r == key
	case f.colorType == 0 && f.depth == 16:
		match = r == f.key[0]
	case f.colorType == 0:
		match = r == f.key[0]&0xff
	case f.depth == 16:
		match = r>>8 == f.key[0]&0xff && g>>8 == f.key[1]&0xff && b>>8 == f.key[2]&0xff
	default:
		match = r == f.key[0]&0xff && g == f.key[1]&0xff && b == f.key[2]&0xff
	}
	if match {
		return 0
	}
	return 255
}

// isChunkType is PngImagePlugin's is_cid: four \w bytes.
func isChunkType(t []byte) bool {
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return len(t) == 4
}

// pillowInflate is _safe_zlib_decompress: the inflated text, an error where Pillow raises (more than
// MAX_TEXT_CHUNK), and ok=false where Pillow's zlib.error path applies. A stream Go cannot finish is refused:
// Python's zlib would return what it inflated so far.
func pillowInflate(data []byte, source, what string) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, unsupported(source, fmt.Sprintf("has a %s chunk whose zlib data the Go port cannot read the "+
			"way Pillow does (%v)", what, err))
	}
	out, err := io.ReadAll(io.LimitReader(r, pillowMaxTextChunk+1))
	if len(out) >= pillowMaxTextChunk {
		return nil, unreadable(source, fmt.Sprintf("is truncated or corrupt (a %s chunk inflates beyond "+
			"Pillow's MAX_TEXT_CHUNK)", what))
	}
	if err != nil {
		return nil, unsupported(source, fmt.Sprintf("has a %s chunk whose zlib data the Go port cannot read the "+
			"way Pillow does (%v)", what, err))
	}
	return out, nil
}

// orientationKeys are text chunk keywords Pillow reads EXIF or XMP orientation from; not ported (refused).
var orientationKeys = map[string]bool{"exif": true, "Raw profile type exif": true, "XML:com.adobe.xmp": true}

func pillowPNG(data []byte, source string) (*pngFacts, error) {
	corrupt := func(why string) error {
		return unreadable(source, "is truncated or corrupt (PNG data could not be decoded: "+why+")")
	}
	f := &pngFacts{orientation: 1}
	var exif []byte
	haveExif, seenIDAT, seenIHDR := false, false, false
	textMemory := 0
	pos := len(pngMagic)
	for {
		if pos+8 > len(data) {
			if seenIDAT { // Pillow stops quietly after the image data; Go's decoder still requires IEND
				break
			}
			return nil, corrupt("no IEND chunk")
		}
		length := int64(binary.BigEndian.Uint32(data[pos:]))
		typ := data[pos+4 : pos+8]
		start := int64(pos + 8)
		end := start + length
		if !isChunkType(typ) {
			if seenIDAT { // Pillow's load_end stops reading chunks here
				break
			}
			return nil, corrupt(fmt.Sprintf("chunk %q", typ))
		}
		if end+4 > int64(len(data)) {
			if seenIDAT {
				break
			}
			return nil, corrupt(fmt.Sprintf("chunk %s is cut off", typ))
		}
		s := data[start:end]
		pos = int(end + 4)
		switch string(typ) {
		case "IEND":
			return f.finish(exif, haveExif, seenIHDR, source)
		case "IHDR":
			if len(s) < 13 {
				return nil, corrupt("truncated IHDR chunk")
			}
			seenIHDR = true
			f.width, f.height = int(binary.BigEndian.Uint32(s)), int(binary.BigEndian.Uint32(s[4:]))
			f.depth, f.colorType = int(s[8]), int(s[9])
		case "IDAT":
			seenIDAT = true
		case "PLTE":
			f.paletteSize = len(s) / 3
		case "tRNS":
			switch f.colorType {
			case 0:
				if len(s) < 2 {
					return nil, corrupt("truncated tRNS chunk")
				}
				f.hasKey, f.key[0] = true, binary.BigEndian.Uint16(s)
			case 2:
				if len(s) < 6 {
					return nil, corrupt("truncated tRNS chunk")
				}
				f.hasKey = true
				for i := range f.key {
					f.key[i] = binary.BigEndian.Uint16(s[2*i:])
				}
			}
		case "gAMA", "cHRM", "sRGB", "pHYs": // Pillow refuses these when shorter than their fields
			need := map[string]int{"gAMA": 4, "cHRM": 32, "sRGB": 1, "pHYs": 9}[string(typ)]
			if len(s) < need {
				return nil, corrupt("truncated " + string(typ) + " chunk")
			}
		case "iCCP":
			i := bytes.IndexByte(s, 0) + 1 // Pillow: s[s.find(b"\0") + 1], also when there is no NUL
			if i >= len(s) {
				return nil, corrupt("truncated iCCP chunk")
			}
			if s[i] != 0 {
				return nil, corrupt(fmt.Sprintf("unknown compression method %d in iCCP chunk", s[i]))
			}
			if _, err := pillowInflate(s[i+1:], source, "iCCP"); err != nil {
				return nil, err
			}
		case "tEXt", "zTXt", "iTXt":
			n, err := textChunk(string(typ), s, source)
			if err != nil {
				return nil, err
			}
			if textMemory += n; textMemory > pillowMaxTextMemory {
				return nil, corrupt("too much memory used in text chunks")
			}
		case "eXIf":
			exif, haveExif = append([]byte("Exif\x00\x00"), s...), true
		case "acTL", "fcTL", "fdAT":
			return nil, unsupported(source, "is an animated PNG (APNG); the Go port decodes still PNGs only")
		}
	}
	return f.finish(exif, haveExif, seenIHDR, source)
}

func (f *pngFacts) finish(exif []byte, haveExif, seenIHDR bool, source string) (*pngFacts, error) {
	if !seenIHDR {
		return nil, unreadable(source, "is truncated or corrupt (no IHDR chunk)")
	}
	if haveExif {
		f.orientation = exifOrientation(exif)
	}
	return f, nil
}

// textChunk checks a tEXt/zTXt/iTXt chunk as Pillow reads it and returns the text length Pillow counts against
// MAX_TEXT_MEMORY. Keywords Pillow reads orientation from are refused (not ported).
func textChunk(typ string, s []byte, source string) (int, error) {
	key, value, found := bytes.Cut(s, []byte{0})
	if !found {
		key, value = s, nil
	}
	if orientationKeys[string(key)] {
		return 0, unsupported(source, fmt.Sprintf("has a %s chunk %q that may carry an EXIF/XMP orientation; the "+
			"Go port reads orientation from eXIf chunks only", typ, key))
	}
	switch typ {
	case "tEXt":
		if len(key) == 0 {
			return 0, nil
		}
		return len(value), nil // latin-1: one character per byte
	case "zTXt":
		method := byte(0)
		if len(value) > 0 {
			method = value[0]
		}
		if method != 0 {
			return 0, unreadable(source, fmt.Sprintf("is truncated or corrupt (unknown compression method %d in "+
				"zTXt chunk)", method))
		}
		text := []byte{}
		if len(value) > 0 {
			var err error
			if text, err = pillowInflate(value[1:], source, "zTXt"); err != nil {
				return 0, err
			}
		}
		if len(key) == 0 {
			return 0, nil
		}
		return len(text), nil
	}
	// iTXt: keyword \0 flag method language \0 translated keyword \0 text
	if !found || len(value) < 2 {
		return 0, nil
	}
	flag, method, rest := value[0], value[1], value[2:]
	parts := bytes.SplitN(rest, []byte{0}, 3)
	if len(parts) < 3 {
		return 0, nil
	}
	text := parts[2]
	if flag != 0 {
		if method != 0 {
			return 0, nil
		}
		var err error
		if text, err = pillowInflate(text, source, "iTXt"); err != nil {
			return 0, err
		}
	}
	if !utf8.Valid(parts[0]) || !utf8.Valid(parts[1]) || !utf8.Valid(text) {
		return 0, nil // Pillow skips the chunk on a UnicodeError
	}
	return utf8.RuneCount(text), nil
}

// exifOrientation is Image.getexif().get(0x0112) as images._exif_orientation uses it (1 when absent, not an int in
// 2..8, or when Pillow's EXIF reader raises), for an eXIf payload ("Exif\0\0" + TIFF). It follows
// ImageFileDirectory_v2.load: the first usable entry of a tag wins, entries with unknown types, empty data or data
// beyond the stream are skipped, and reading stops at the first truncated read.
func exifOrientation(info []byte) int {
	data := info
	for i := 0; i < 2 && bytes.HasPrefix(data, []byte("Exif\x00\x00")); i++ {
		data = data[6:]
	}
	if len(data) == 0 {
		return 1
	}
	head := data
	if len(head) > 8 {
		head = head[:8]
	}
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(head, []byte("MM\x00\x2a")), bytes.HasPrefix(head, []byte("MM\x2a\x00")),
		bytes.HasPrefix(head, []byte("MM\x00\x2b")):
		order = binary.BigEndian
	case bytes.HasPrefix(head, []byte("II\x2a\x00")), bytes.HasPrefix(head, []byte("II\x00\x2a")),
		bytes.HasPrefix(head, []byte("II\x2b\x00")):
		order = binary.LittleEndian
	default:
		return 1 // SyntaxError: not a TIFF header
	}
	if head[2] == 43 || len(head) < 8 { // BigTIFF needs a 16-byte header, a short one fails to unpack: both raise
		return 1
	}
	// (unit size, is an integer type) of ImageFileDirectory_v2._load_dispatch
	types := map[uint16][2]int{1: {1, 0}, 2: {1, 0}, 3: {2, 1}, 4: {4, 1}, 5: {8, 0}, 6: {1, 1}, 7: {1, 0},
		8: {2, 1}, 9: {4, 1}, 10: {8, 0}, 11: {4, 0}, 12: {8, 0}, 13: {4, 1}, 16: {8, 1}}
	limit := int64(len(data))
	pos := int64(order.Uint32(head[4:]))
	if pos+2 > limit {
		return 1
	}
	count := int(order.Uint16(data[pos:]))
	pos += 2
	total := int64(0)
	stored := map[uint16]bool{}
	for i := 0; i < count; i++ {
		if pos+12 > limit {
			return 1 // OSError: reading stops, the tag was not stored
		}
		entry := data[pos : pos+12]
		pos += 12
		tag, typ, n := order.Uint16(entry), order.Uint16(entry[2:]), int64(order.Uint32(entry[4:]))
		if stored[tag] {
			continue
		}
		spec, known := types[typ]
		if !known {
			continue
		}
		size := n * int64(spec[0])
		value := entry[8:12]
		if size > 4 {
			offset := int64(order.Uint32(entry[8:]))
			if total += size; total > limit {
				continue
			}
			if offset+size > limit {
				return 1 // _safe_read raises OSError: reading stops
			}
			value = data[offset : offset+size]
		} else {
			value = value[:size]
		}
		if len(value) == 0 {
			continue
		}
		if stored[tag] = true; tag != 0x0112 {
			continue
		}
		if spec[1] == 0 {
			return 1 // bytes, str, rational or float: not an int
		}
		var v int64
		switch typ {
		case 3:
			v = int64(order.Uint16(value))
		case 4, 13:
			v = int64(order.Uint32(value))
		case 6:
			v = int64(int8(value[0]))
		case 8:
			v = int64(int16(order.Uint16(value)))
		case 9:
			v = int64(int32(order.Uint32(value)))
		case 16:
			v = int64(order.Uint64(value)) // values >= 2^63 are not in 2..8 either way
		}
		if v >= 2 && v <= 8 {
			return int(v)
		}
		return 1
	}
	return 1
}
