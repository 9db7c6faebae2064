package bridge

import (
	"bytes"
	"errors"
	"testing"
)

// downExpected is what an old consumer reads from records fetched at magic:
// the offsets the broker gave, no timestamps in magic 0.
func downExpected(magic int8, base int64, recs []testRecord) []testRecord {
	want := make([]testRecord, len(recs))
	for i, r := range recs {
		want[i] = r
		want[i].offset = base + int64(i)
		if magic == 0 {
			want[i].timestamp = -1
		}
	}
	return want
}

// readDown decodes a converted message set with franz-go, after giving magic
// 0 lz4 wrappers the standard checksum franz-go insists on (and checking
// they carried the broken one).
func readDown(t *testing.T, set []byte) []testRecord {
	t.Helper()
	return mustKgoRead(t, repairMagic0Lz4(t, set))
}

func TestDownRecordsCodecs(t *testing.T) {
	recs := testRecords(17)
	for _, magic := range []int8{0, 1} {
		for _, codec := range []compression{compressionNone, compressionGzip, compressionSnappy, compressionLz4, compressionZstd} {
			t.Run(codec.String()+"/v"+string('0'+rune(magic)), func(t *testing.T) {
				batch := recordBatch(t, batchSpec{codec: codec, baseOffset: 1000, headers: true}, recs)
				requireRecords(t, mustKgoRead(t, batch), downExpected(1, 1000, recs))

				set, err := DownRecords(batch, magic, 1<<20, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				requireRecords(t, readDown(t, set), downExpected(magic, 1000, recs))

				top := topMessages(t, set)
				if codec == compressionNone || codec == compressionZstd {
					if len(top) != len(recs) {
						t.Fatalf("%d top-level messages, want %d plain ones", len(top), len(recs))
					}
					for _, m := range top {
						if m.magic != magic || m.attributes != 0 {
							t.Fatalf("message magic %d attributes %#x, want magic %d plain", m.magic, m.attributes, magic)
						}
					}
					return
				}
				if len(top) != 1 {
					t.Fatalf("%d top-level messages, want one wrapper", len(top))
				}
				w := top[0]
				if w.magic != magic || compression(w.attributes) != codec || w.offset != 1000+int64(len(recs))-1 {
					t.Fatalf("wrapper magic %d attributes %#x offset %d", w.magic, w.attributes, w.offset)
				}
				if codec == compressionSnappy && !isXerial(w.value) {
					t.Fatal("snappy wrapper without xerial framing")
				}
				if codec == compressionLz4 && magic == 1 && w.value[6] != lz4HeaderChecksum(w.value[4:6]) {
					t.Fatal("magic 1 lz4 wrapper without the standard header checksum")
				}
				inner, err := new(codecs).inflate(codec, w.value, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				for i, m := range topMessages(t, inner) {
					want := int64(i)
					if magic == 0 {
						want += 1000
					}
					if m.offset != want || m.magic != magic || m.attributes != 0 {
						t.Fatalf("inner message %d: offset %d magic %d attributes %#x, want offset %d", i, m.offset, m.magic, m.attributes, want)
					}
				}
				if magic == 1 && w.timestamp != 1_700_000_000_000+4000 {
					t.Fatalf("wrapper timestamp %d, want the highest inner one", w.timestamp)
				}
			})
		}
	}
}

// Control batches are dropped, batches follow each other, compaction gaps
// keep their offsets inside a wrapper too.
func TestDownRecordsBatches(t *testing.T) {
	recs := testRecords(12)
	var in []byte
	in = append(in, recordBatch(t, batchSpec{baseOffset: 10}, recs[:4])...)
	in = append(in, recordBatch(t, batchSpec{baseOffset: 14, control: true}, []testRecord{{key: []byte{0, 0, 0, 1}, value: []byte{0, 0, 0, 0, 0, 0}}})...)
	in = append(in, recordBatch(t, batchSpec{baseOffset: 15, codec: compressionGzip, offsetGap: 3}, recs[4:8])...)
	in = append(in, recordBatch(t, batchSpec{baseOffset: 25, codec: compressionLz4}, recs[8:])...)
	want := downExpected(1, 10, recs[:4])
	for i, r := range downExpected(1, 15, recs[4:8]) {
		if i > 0 {
			r.offset += 3
		}
		want = append(want, r)
	}
	want = append(want, downExpected(1, 25, recs[8:])...)
	requireRecords(t, mustKgoRead(t, in), want)
	requireDown(t, in, want)
}

// requireDown converts in to magic 0 and to magic 1 and requires of each
// the records want at their own offsets (without timestamps at magic 0);
// it returns the two sets, by magic.
func requireDown(t *testing.T, in []byte, want []testRecord) [2][]byte {
	t.Helper()
	var sets [2][]byte
	for magic := range int8(2) {
		set, err := DownRecords(in, magic, 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		wantMagic := downExpected(magic, 0, want)
		for i := range wantMagic {
			wantMagic[i].offset = want[i].offset
		}
		requireRecords(t, readDown(t, set), wantMagic)
		sets[magic] = set
	}
	return sets
}

// LogAppendTime batches give every record the batch's max timestamp, and
// magic 1 messages say so in their attributes. A magic 1 wrapper stamped
// LogAppendTime gives its inner messages its own timestamp, as Kafka's
// consumer reads it; the converted inner messages carry it too, so a reader
// that looks only at inner messages (franz-go does) sees it.
func TestDownRecordsLogAppendTime(t *testing.T) {
	recs := testRecords(3)
	const appended = 1_900_000_000_000
	for name, in := range map[string][]byte{
		"batch":                recordBatch(t, batchSpec{logAppendTime: appended}, recs),
		"gzip batch":           recordBatch(t, batchSpec{codec: compressionGzip, logAppendTime: appended}, recs),
		"magic 1 gzip wrapper": legacySet(t, legacySetSpec{magic: 1, codec: compressionGzip, logAppendAt: appended}, recs),
	} {
		set, err := DownRecords(in, 1, 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := downExpected(1, 0, recs)
		for i := range want {
			want[i].timestamp = appended
		}
		requireRecords(t, mustKgoRead(t, set), want)
		for _, m := range topMessages(t, set) {
			if m.attributes&legacyLogAppendTime == 0 || m.timestamp != appended {
				t.Fatalf("%s: top-level message attributes %#x timestamp %d", name, m.attributes, m.timestamp)
			}
		}
	}
}

// maxBytes keeps a prefix of whole messages, at least one (KIP-74), and the
// partial batch a broker ends a fetch with is left out.
func TestDownRecordsMaxBytes(t *testing.T) {
	recs := testRecords(10)
	var in []byte
	in = append(in, recordBatch(t, batchSpec{baseOffset: 0}, recs[:5])...)
	in = append(in, recordBatch(t, batchSpec{baseOffset: 5, codec: compressionGzip}, recs[5:8])...)
	in = append(in, recordBatch(t, batchSpec{baseOffset: 8}, recs[8:])...)
	whole, err := DownRecords(in, 1, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	top := topMessages(t, whole)
	if len(top) != 5+1+2 {
		t.Fatalf("%d top-level messages, want 8", len(top))
	}
	all := downExpected(1, 0, recs)
	sizeUpTo := func(n int) int {
		s := 0
		for _, m := range top[:n] {
			s += len(m.raw)
		}
		return s
	}
	for _, tc := range []struct {
		name     string
		maxBytes int
		records  int
	}{
		{"smaller than the first message", 1, 1},
		{"zero", 0, 1},
		{"three messages", sizeUpTo(3), 3},
		{"three and a half", sizeUpTo(3) + len(top[3].raw)/2, 3},
		{"one byte short of the wrapper", sizeUpTo(6) - 1, 5},
		{"up to the wrapper", sizeUpTo(6), 8},
		{"all", len(whole), 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := DownRecords(in, 1, int32(tc.maxBytes), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(set) > max(tc.maxBytes, len(top[0].raw)) {
				t.Fatalf("%d bytes for maxBytes %d", len(set), tc.maxBytes)
			}
			requireRecords(t, mustKgoRead(t, set), all[:tc.records])
		})
	}
	// A lone wrapper larger than maxBytes is still sent whole.
	set, err := DownRecords(recordBatch(t, batchSpec{codec: compressionGzip}, recs), 1, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	requireRecords(t, mustKgoRead(t, set), all)

	for cut := 1; cut < 61; cut += 7 {
		set, err := DownRecords(in[:len(in)-cut], 1, 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		requireRecords(t, mustKgoRead(t, set), all[:8])
	}
}

// Message sets a broker stored in magic 0/1 are converted too, and a set
// converted up comes back down as it was.
func TestDownRecordsLegacyInputAndRoundTrip(t *testing.T) {
	recs := testRecords(6)
	stored := legacySet(t, legacySetSpec{magic: 1, codec: compressionSnappy, xerial: true, firstOffset: 40}, recs)
	stored = append(stored, legacySet(t, legacySetSpec{magic: 0, firstOffset: 46}, recs[:2])...)
	want := append(downExpected(0, 40, recs), downExpected(0, 46, recs[:2])...)
	set, err := DownRecords(stored, 0, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	requireRecords(t, readDown(t, set), want)

	for _, codec := range []compression{compressionNone, compressionGzip, compressionSnappy, compressionLz4} {
		for _, magic := range []int8{0, 1} {
			client := legacySet(t, legacySetSpec{magic: magic, codec: codec}, recs)
			batch, err := UpMessageSet(client, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			back, err := DownRecords(batch, magic, 1<<20, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			requireRecords(t, readDown(t, back), downExpected(magic, 0, upExpected(magic, recs)))
		}
	}
}

func TestDownRecordsFails(t *testing.T) {
	recs := testRecords(4)
	batch := recordBatch(t, batchSpec{codec: compressionGzip}, recs)
	if _, err := DownRecords(batch, 2, 1<<20, 1<<20); err == nil {
		t.Fatal("converted to magic 2")
	}
	bomb := recordBatch(t, batchSpec{codec: compressionZstd}, []testRecord{{value: make([]byte, 8<<20)}})
	if _, err := DownRecords(bomb, 1, 1<<20, 1<<20); !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("zstd bomb: err = %v, want ErrRecordsTooLarge", err)
	}
	gzBomb := recordBatch(t, batchSpec{codec: compressionGzip}, []testRecord{{value: make([]byte, 8<<20)}})
	if _, err := DownRecords(gzBomb, 0, 1<<20, 1<<20); !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("gzip bomb: err = %v, want ErrRecordsTooLarge", err)
	}
	if _, err := DownRecords(recordBatch(t, batchSpec{}, recs), 1, 1<<20, 64); !errors.Is(err, ErrRecordsTooLarge) {
		t.Fatalf("output past maxOut: err = %v, want ErrRecordsTooLarge", err)
	}
	badCount := bytes.Clone(recordBatch(t, batchSpec{}, recs))
	badCount[60]++ // NumRecords says one more than there is
	if _, err := DownRecords(badCount, 1, 1<<20, 1<<20); !errors.Is(err, ErrCorruptRecords) {
		t.Fatalf("records short of NumRecords: err = %v, want ErrCorruptRecords", err)
	}
	for _, codec := range []compression{compressionNone, compressionGzip} {
		negative := recordBatch(t, batchSpec{codec: codec, baseOffset: -5}, recs)
		if _, err := DownRecords(negative, 1, 1<<20, 1<<20); !errors.Is(err, ErrCorruptRecords) {
			t.Fatalf("%v batch at offset -5: err = %v, want ErrCorruptRecords", codec, err)
		}
	}
	badMagic := bytes.Clone(batch)
	badMagic[16] = 7
	if _, err := DownRecords(badMagic, 1, 1<<20, 1<<20); !errors.Is(err, ErrCorruptRecords) {
		t.Fatalf("magic 7: err = %v, want ErrCorruptRecords", err)
	}
	for _, in := range [][]byte{nil, {}} {
		if got, err := DownRecords(in, 1, 100, 100); err != nil || len(got) != 0 {
			t.Fatalf("DownRecords(%#v) = %#v, %v", in, got, err)
		}
	}
}

// A negative maxOut allows nothing rather than panicking (it made a buffer
// of negative capacity before readBounded refused it).
func TestNegativeMaxOut(t *testing.T) {
	recs := testRecords(3)
	for _, codec := range []compression{compressionNone, compressionGzip, compressionSnappy, compressionLz4, compressionZstd} {
		if _, err := DownRecords(recordBatch(t, batchSpec{codec: codec}, recs), 1, 1<<20, -5); !errors.Is(err, ErrRecordsTooLarge) {
			t.Errorf("DownRecords %v, maxOut -5: err = %v, want ErrRecordsTooLarge", codec, err)
		}
		if codec == compressionZstd {
			continue
		}
		if _, err := UpMessageSet(legacySet(t, legacySetSpec{magic: 1, codec: codec}, recs), -5); !errors.Is(err, ErrRecordsTooLarge) {
			t.Errorf("UpMessageSet %v, maxOut -5: err = %v, want ErrRecordsTooLarge", codec, err)
		}
	}
}
