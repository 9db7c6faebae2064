package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// ErrCorruptRecords is wrapped by every error that says a message set or a
// record batch is malformed: bad length, bad CRC, bad compressed data, an
// unknown magic or codec. A client that sent such a set is answered
// CORRUPT_MESSAGE, as the broker would have.
var ErrCorruptRecords = errors.New("corrupt records")

// ErrRecordsTooLarge is wrapped by the error of a conversion that would hold
// more than its maxOut bytes of decompressed or converted data.
var ErrRecordsTooLarge = errors.New("records too large")

// compression is the codec in the low three attribute bits of a message,
// a wrapper or a record batch.
type compression int8

const (
	compressionNone compression = iota
	compressionGzip
	compressionSnappy
	compressionLz4
	compressionZstd
)

const compressionMask = 0x07

func (c compression) String() string {
	switch c {
	case compressionNone:
		return "none"
	case compressionGzip:
		return "gzip"
	case compressionSnappy:
		return "snappy"
	case compressionLz4:
		return "lz4"
	case compressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec %d", int8(c))
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptRecords}, args...)...)
}

func tooLarge(what string, limit int) error {
	return fmt.Errorf("%w: %s exceeds the limit of %d bytes", ErrRecordsTooLarge, what, limit)
}

// codecs holds the stream codecs of one conversion, made on first use and
// reset for every wrapper or batch after (a gzip writer alone is hundreds of
// KiB of state).
type codecs struct {
	gzipReader *gzip.Reader
	gzipWriter *gzip.Writer
	lz4Reader  *lz4.Reader
	lz4Writer  *lz4.Writer
	zstdReader *zstd.Decoder
	maxOut     int       // what the zstd reader may decode at most
	alloc      Allocator // the memory decompressed data is written into
}

// close releases the zstd reader, the one codec that must be closed.
func (cs *codecs) close() {
	if cs.zstdReader != nil {
		cs.zstdReader.Close()
	}
}

// inflate decompresses src, which c compressed, into at most limit bytes.
// lz4 frames are accepted with either header checksum: magic 0 wrappers
// carry the one KAFKA-3160 computed over the frame magic as well.
func (cs *codecs) inflate(c compression, src []byte, limit int) ([]byte, error) {
	var r io.Reader
	switch c {
	case compressionGzip:
		var err error
		if cs.gzipReader == nil {
			cs.gzipReader, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = cs.gzipReader.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return nil, corruptf("gzip: %v", err)
		}
		r = cs.gzipReader
	case compressionSnappy:
		return cs.inflateSnappy(src, limit)
	case compressionLz4:
		if cs.lz4Reader == nil {
			cs.lz4Reader = lz4.NewReader(nil)
		}
		cs.lz4Reader.Reset(lz4FrameWithStandardChecksum(src))
		r = cs.lz4Reader
	case compressionZstd:
		zr, err := cs.zstd(limit)
		if err != nil {
			return nil, err
		}
		if err := zr.Reset(bytes.NewReader(src)); err != nil {
			return nil, corruptf("zstd: %v", err)
		}
		r = zr
	default:
		return nil, corruptf("unknown compression %v", c)
	}
	out, err := cs.alloc.readBounded(r, limit, inflatedSizeHint(c, src))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return nil, tooLarge("decompressed data", limit)
	}
	if err != nil && !errors.Is(err, ErrRecordsTooLarge) {
		return nil, corruptf("%v: %v", c, err)
	}
	return out, err
}

// inflatedSizeHint guesses what src inflates to: a gzip member ends with
// its size (which garbage may overstate, hence the cap), otherwise a ratio
// typical of record data.
func inflatedSizeHint(c compression, src []byte) int {
	if c == compressionGzip && len(src) >= 18 {
		return min(int(binary.LittleEndian.Uint32(src[len(src)-4:])), 8*len(src))
	}
	return 4 * len(src)
}

// readBounded reads r to its end into a buffer from a that starts at
// sizeHint bytes and never grows past limit bytes. A full buffer grows only
// once a byte past it proves it must, so an exact hint costs no growth.
func (a Allocator) readBounded(r io.Reader, limit, sizeHint int) ([]byte, error) {
	if limit < 0 {
		return nil, tooLarge("decompressed data", limit)
	}
	buf := a.get(min(max(sizeHint, 512), limit))
	for {
		if len(buf) == cap(buf) {
			var next [1]byte
			_, err := io.ReadFull(r, next[:])
			if err == io.EOF {
				return buf, nil
			}
			if err != nil {
				return nil, err
			}
			if buf, err = a.reserve(buf, 1, limit); err != nil {
				return nil, tooLarge("decompressed data", limit)
			}
			buf = append(buf, next[0])
			continue
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// zstd is the conversion's zstd reader, which decodes a frame into at
// most limit bytes of window and output alike.
func (cs *codecs) zstd(limit int) (*zstd.Decoder, error) {
	if limit < 1 {
		return nil, tooLarge("decompressed data", limit)
	}
	if cs.zstdReader == nil {
		var err error
		cs.zstdReader, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(max(cs.maxOut, limit))),
		)
		if err != nil {
			return nil, err
		}
	}
	return cs.zstdReader, nil
}

// inflateSnappy decompresses raw snappy or the xerial framing snappy-java's
// SnappyOutputStream writes (Kafka's clients and brokers use it for snappy
// message sets), after adding up the decoded lengths the blocks declare.
func (cs *codecs) inflateSnappy(src []byte, limit int) ([]byte, error) {
	n, err := snappyDecodedLen(src)
	if err != nil {
		return nil, corruptf("snappy: %v", err)
	}
	if n > limit {
		return nil, tooLarge("decompressed data", limit)
	}
	out, err := xerial.DecodeCapped(cs.alloc.get(n), src)
	if err != nil {
		return nil, corruptf("snappy: %v", err)
	}
	return out, nil
}

const (
	xerialMagic = "\x82SNAPPY\x00"
	// magic, version 1, compatible version 1
	xerialHeaderLen = 16
	// the block size of snappy-java and of the xerial package
	xerialBlockSize = 32 << 10
)

func isXerial(src []byte) bool {
	return len(src) >= xerialHeaderLen && string(src[:len(xerialMagic)]) == xerialMagic
}

func snappyDecodedLen(src []byte) (int, error) {
	if !isXerial(src) {
		return s2.DecodedLen(src)
	}
	total := 0
	for blocks := src[xerialHeaderLen:]; len(blocks) > 0; {
		if len(blocks) < 4 {
			return 0, errors.New("truncated xerial block length")
		}
		size := binary.BigEndian.Uint32(blocks)
		blocks = blocks[4:]
		if uint64(size) > uint64(len(blocks)) {
			return 0, fmt.Errorf("xerial block of %d bytes past the end", size)
		}
		n, err := s2.DecodedLen(blocks[:size])
		if err != nil {
			return 0, err
		}
		if total += n; total < 0 {
			return 0, errors.New("xerial blocks overflow")
		}
		blocks = blocks[size:]
	}
	return total, nil
}

// xerialMaxLen is the most xerial.Encode can take for n bytes.
func xerialMaxLen(n int) int {
	full, rest := n/xerialBlockSize, n%xerialBlockSize
	max := xerialHeaderLen + full*(4+s2.MaxEncodedLen(xerialBlockSize))
	if rest > 0 {
		max += 4 + s2.MaxEncodedLen(rest)
	}
	return max
}

// deflate appends src compressed with c to dst. Snappy is xerial-framed and
// lz4 is one frame of 64 KiB independent blocks without content checksum,
// the layout Kafka's own KafkaLZ4BlockOutputStream writes; with
// brokenLz4Checksum its header checksum covers the frame magic too, as magic
// 0 readers expect (KAFKA-3160). The result may not exceed limit bytes.
func (cs *codecs) deflate(dst []byte, c compression, src []byte, brokenLz4Checksum bool, limit int) ([]byte, error) {
	w := &boundedWriter{buf: dst, limit: limit, alloc: cs.alloc}
	switch c {
	case compressionGzip:
		if cs.gzipWriter == nil {
			cs.gzipWriter = gzip.NewWriter(w)
		} else {
			cs.gzipWriter.Reset(w)
		}
		gz := cs.gzipWriter
		if _, err := gz.Write(src); err != nil {
			return nil, err
		}
		if err := gz.Close(); err != nil {
			return nil, err
		}
	case compressionSnappy:
		// Given room for the worst case, xerial.Encode writes in place
		// after the header dst holds (it adds its own header only to an
		// empty dst), and append copies it onto itself.
		buf, err := cs.alloc.reserve(w.buf, xerialMaxLen(len(src)), limit)
		if err != nil {
			return nil, err
		}
		w.buf = append(buf, xerial.Encode(buf[len(buf):], src)...)
	case compressionLz4:
		start := len(w.buf)
		if cs.lz4Writer == nil {
			cs.lz4Writer = lz4.NewWriter(w)
			if err := cs.lz4Writer.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)); err != nil {
				return nil, err
			}
		} else {
			cs.lz4Writer.Reset(w)
		}
		lw := cs.lz4Writer
		if _, err := lw.Write(src); err != nil {
			return nil, err
		}
		if err := lw.Close(); err != nil {
			return nil, err
		}
		if brokenLz4Checksum {
			frame := w.buf[start:]
			frame[lz4PlainHeaderLen-1] = lz4HeaderChecksum(frame[:lz4PlainHeaderLen-1])
		}
	default:
		return nil, fmt.Errorf("bridge: cannot compress with %v", c)
	}
	return w.buf, nil
}

// boundedWriter collects a compressor's output and fails the write that
// would take it past limit bytes.
type boundedWriter struct {
	buf   []byte
	limit int
	alloc Allocator
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	buf, err := w.alloc.reserve(w.buf, len(p), w.limit)
	if err != nil {
		return 0, err
	}
	w.buf = append(buf, p...)
	return len(p), nil
}

// reserve returns buf with room for n more bytes, growing it geometrically
// into memory from a but never past limit bytes (append's growth would).
func (a Allocator) reserve(buf []byte, n, limit int) ([]byte, error) {
	need := len(buf) + n
	if need > limit || need < 0 {
		return nil, tooLarge("converted records", limit)
	}
	if need <= cap(buf) {
		return buf, nil
	}
	grown := append(a.get(min(max(need, 2*cap(buf)), limit)), buf...)
	a.free(buf)
	return grown, nil
}

const (
	lz4FrameMagic = 0x184D2204
	// magic, FLG, BD, HC: the header of a frame without content size or
	// dictionary id, as Kafka and deflate write it.
	lz4PlainHeaderLen = 7
)

// lz4FrameWithStandardChecksum returns a reader of the lz4 frame src whose
// header checksum is the standard one: a frame carrying the KAFKA-3160
// checksum (computed over the frame magic too) has its checksum byte
// replaced, without copying the frame. Anything else is returned as is for
// the lz4 reader to judge.
func lz4FrameWithStandardChecksum(src []byte) io.Reader {
	if len(src) < lz4PlainHeaderLen || binary.LittleEndian.Uint32(src) != lz4FrameMagic {
		return bytes.NewReader(src)
	}
	flg := src[4]
	hc := 6 // magic, FLG, BD
	if flg&0x08 != 0 {
		hc += 8 // content size
	}
	if flg&0x01 != 0 {
		hc += 4 // dictionary id
	}
	if len(src) <= hc || src[hc] == lz4HeaderChecksum(src[4:hc]) || src[hc] != lz4HeaderChecksum(src[:hc]) {
		return bytes.NewReader(src)
	}
	header := append(src[:hc:hc], lz4HeaderChecksum(src[4:hc]))
	return io.MultiReader(bytes.NewReader(header), bytes.NewReader(src[hc+1:]))
}

// lz4HeaderChecksum is the second byte of the XXH32 (seed 0) of b, the
// lz4 frame descriptor checksum.
func lz4HeaderChecksum(b []byte) byte {
	return byte(xxh32(b) >> 8)
}

// xxh32 is XXH32 with seed 0, for the few bytes of an lz4 frame header
// (the lz4 package keeps its own implementation internal).
func xxh32(b []byte) uint32 {
	const (
		p1 uint32 = 2654435761
		p2 uint32 = 2246822519
		p3 uint32 = 3266489917
		p4 uint32 = 668265263
		p5 uint32 = 374761393
	)
	round := func(acc, in uint32) uint32 {
		return bits.RotateLeft32(acc+in*p2, 13) * p1
	}
	n := uint32(len(b))
	var seed, h uint32
	if len(b) >= 16 {
		v1, v2, v3, v4 := seed+p1+p2, seed+p2, seed, seed-p1
		for ; len(b) >= 16; b = b[16:] {
			v1 = round(v1, binary.LittleEndian.Uint32(b))
			v2 = round(v2, binary.LittleEndian.Uint32(b[4:]))
			v3 = round(v3, binary.LittleEndian.Uint32(b[8:]))
			v4 = round(v4, binary.LittleEndian.Uint32(b[12:]))
		}
		h = bits.RotateLeft32(v1, 1) + bits.RotateLeft32(v2, 7) + bits.RotateLeft32(v3, 12) + bits.RotateLeft32(v4, 18)
	} else {
		h = seed + p5
	}
	h += n
	for ; len(b) >= 4; b = b[4:] {
		h += binary.LittleEndian.Uint32(b) * p3
		h = bits.RotateLeft32(h, 17) * p4
	}
	for _, c := range b {
		h += uint32(c) * p5
		h = bits.RotateLeft32(h, 11) * p1
	}
	h ^= h >> 15
	h *= p2
	h ^= h >> 13
	h *= p3
	h ^= h >> 16
	return h
}
