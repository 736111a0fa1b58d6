// zstd:chunked annotations, TOC and chunks: a hand-made layer laid out as containers/storage
// writes one (each file's data in frames of its own, a tar header frame between them, the
// TOC in a skippable frame), each case bending one thing. Real podman layers are checked by
// tests/tools/estargz_check, which stargz_test.sh runs.
#include "graph/zstd_chunked.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "graph/tar_index.h"
#include "test_util.h"

namespace imagefs {
namespace zstd_chunked_test {  // not anonymous: the test sources build as one unit

using testing::ScratchDir;
using testing::Zstd;

std::string Sha(const std::string& data) { return Sha256::Of(data).str(); }

struct Layer {
  std::string blob;
  Descriptor descriptor;
  ZstdChunkedToc toc;
};

class ZstdChunkedTest : public ::testing::Test {
 protected:
  // Appends data as one frame after a tar header's frame; returns its offset.
  uint64_t Frame(const std::string& data) {
    blob_ += Zstd("a tar header");
    uint64_t at = blob_.size();
    blob_ += Zstd(data);
    return at;
  }
  Layer Finish(const std::string& toc_json, const char* prefix = "io.github.containers") {
    blob_ += Zstd("the end-of-archive blocks");
    std::string compressed = Zstd(toc_json);
    std::string skippable("\x50\x2a\x4d\x18", 4);
    uint32_t n = static_cast<uint32_t>(compressed.size());
    skippable.append(reinterpret_cast<const char*>(&n), 4);
    Layer l;
    l.toc = {blob_.size() + 8, compressed.size(), toc_json.size(), Sha256::Of(compressed)};
    l.blob = blob_ + skippable + compressed + std::string(48, 'F');  // tar-split, footer
    l.descriptor.digest = Sha256::Of(l.blob);
    l.descriptor.size = l.blob.size();
    l.descriptor.annotations[std::string(prefix) + ".zstd-chunked.manifest-position"] =
        std::to_string(l.toc.offset) + ":" + std::to_string(l.toc.length) + ":" +
        std::to_string(l.toc.uncompressed_size) + ":1";
    l.descriptor.annotations[std::string(prefix) + ".zstd-chunked.manifest-checksum"] =
        l.toc.checksum.str();
    return l;
  }
  // Files as podman writes them: small (one frame, only the file's digest), big (two
  // chunks, each a frame with its chunkDigest), an empty file and a whiteout.
  std::string UsualToc(const std::string& extra_entries = "") {
    small_ = Frame("hello\n");
    small_end_ = blob_.size();
    big1_ = Frame(std::string(5000, 'x'));
    big2_ = blob_.size();
    blob_ += Zstd(std::string(3000, 'y'));
    big_end_ = blob_.size();
    return R"({"version":1,"entries":[
      {"type":"dir","name":"./","mode":493,"modtime":"2024-01-02T03:04:05.5Z",
       "accesstime":"0001-01-01T00:00:00Z","changetime":"0001-01-01T00:00:00Z"},
      {"type":"reg","name":"etc/small","mode":420,"size":6,"modtime":"2024-01-02T03:04:05Z",
       "digest":")" +
           Sha("hello\n") + R"(","offset":)" + std::to_string(small_) + R"(,"endOffset":)" +
           std::to_string(small_end_) + R"(},
      {"type":"reg","name":"big","size":8000,"digest":")" +
           Sha(std::string(5000, 'x') + std::string(3000, 'y')) + R"(","offset":)" +
           std::to_string(big1_) + R"(,"endOffset":)" + std::to_string(big_end_) +
           R"(,"chunkSize":5000,"chunkDigest":")" + Sha(std::string(5000, 'x')) + R"("},
      {"type":"chunk","name":"big","offset":)" +
           std::to_string(big2_) + R"(,"chunkOffset":5000,"chunkSize":3000,"chunkDigest":")" +
           Sha(std::string(3000, 'y')) + R"("},
      {"type":"reg","name":"empty","mode":384},
      {"type":"reg","name":"etc/.wh.gone"},
      {"type":"hardlink","name":"etc/hard","linkName":"etc/small"})" +
           extra_entries + "]}";
  }
  Result<ChunkedLayout> Index(const Layer& l) {
    auto json =
        ExtractZstdChunkedToc(std::string_view(l.blob).substr(l.toc.offset, l.toc.length), l.toc);
    if (!json) return Fail(json.error());
    return WriteZstdChunkedIndex(*json, l.toc, dir_ / "index");
  }
  std::string Refused(const std::string& toc) {
    auto r = Index(Finish(toc));
    EXPECT_FALSE(r.has_value());
    return r ? "" : r.error().msg;
  }

  ScratchDir dir_;
  std::string blob_;
  uint64_t small_ = 0, small_end_ = 0, big1_ = 0, big2_ = 0, big_end_ = 0;
};

TEST_F(ZstdChunkedTest, AnnotationsSayWhereTheTocIs) {
  for (const char* prefix : {"io.github.containers", "io.containers"}) {
    blob_.clear();
    Layer l = Finish(R"({"version":1,"entries":[]})", prefix);
    auto toc = ZstdChunkedTocOf(l.descriptor);
    ASSERT_TRUE(toc.has_value()) << toc.error().msg;
    ASSERT_TRUE(toc->has_value()) << prefix;
    EXPECT_EQ((*toc)->offset, l.toc.offset);
    EXPECT_EQ((*toc)->length, l.toc.length);
    EXPECT_EQ((*toc)->uncompressed_size, l.toc.uncompressed_size);
    EXPECT_EQ((*toc)->checksum, l.toc.checksum);
  }
  Descriptor plain;
  plain.size = 1000;
  auto none = ZstdChunkedTocOf(plain);
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value()) << "a plain layer";

  Layer l = Finish(R"({"version":1,"entries":[]})");
  auto bent = [&](const std::string& position) {
    Descriptor d = l.descriptor;
    d.annotations["io.github.containers.zstd-chunked.manifest-position"] = position;
    auto r = ZstdChunkedTocOf(d);
    EXPECT_FALSE(r.has_value()) << position;
    return r ? std::string() : r.error().msg;
  };
  EXPECT_NE(bent("12:34").find("malformed"), std::string::npos);
  EXPECT_NE(bent("12:34:56:1:").find("malformed"), std::string::npos);
  EXPECT_NE(bent("-1:34:56:1").find("malformed"), std::string::npos);
  EXPECT_NE(bent(std::to_string(l.blob.size() - 10) + ":100:100:1").find("outside the layer"),
            std::string::npos);
  EXPECT_NE(bent("18446744073709551615:2:2:1").find("outside the layer"), std::string::npos);
  EXPECT_NE(bent("100:10:999999999999:1").find("over the limit"), std::string::npos);
  EXPECT_NE(bent("100:10:10:2").find("TOC type 2"), std::string::npos);
  Descriptor half = l.descriptor;
  half.annotations.erase("io.github.containers.zstd-chunked.manifest-checksum");
  auto r = ZstdChunkedTocOf(half);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().msg.find("missing"), std::string::npos) << r.error().msg;
}

TEST_F(ZstdChunkedTest, TocIsCheckedAndDecompressed) {
  Layer l = Finish(UsualToc());
  std::string_view compressed = std::string_view(l.blob).substr(l.toc.offset, l.toc.length);
  auto json = ExtractZstdChunkedToc(compressed, l.toc);
  ASSERT_TRUE(json.has_value()) << json.error().msg;
  EXPECT_NE(json->find("etc/small"), std::string::npos);

  ZstdChunkedToc other = l.toc;
  other.checksum = Sha256::Of("other");
  auto wrong = ExtractZstdChunkedToc(compressed, other);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_NE(wrong.error().msg.find("checksum mismatch"), std::string::npos) << wrong.error().msg;

  ZstdChunkedToc longer = l.toc;
  longer.uncompressed_size += 1;
  auto size = ExtractZstdChunkedToc(compressed, longer);
  ASSERT_FALSE(size.has_value());
  EXPECT_NE(size.error().msg.find("not the"), std::string::npos) << size.error().msg;
  ZstdChunkedToc shorter = l.toc;
  shorter.uncompressed_size -= 1;
  EXPECT_FALSE(ExtractZstdChunkedToc(compressed, shorter).has_value());

  std::string cut(compressed.substr(0, compressed.size() - 3));
  ZstdChunkedToc cut_toc = l.toc;
  cut_toc.checksum = Sha256::Of(cut);
  EXPECT_FALSE(ExtractZstdChunkedToc(cut, cut_toc).has_value()) << "a frame cut short";
  std::string raw = "{\"version\":1,\"entries\":[]}";
  ZstdChunkedToc raw_toc{0, raw.size(), raw.size(), Sha256::Of(raw)};
  EXPECT_FALSE(ExtractZstdChunkedToc(raw, raw_toc).has_value()) << "not zstd";
}

TEST_F(ZstdChunkedTest, IndexHoldsTheEntriesAndFramesServeTheData) {
  Layer l = Finish(UsualToc());
  auto layer = Index(l);
  ASSERT_TRUE(layer.has_value()) << layer.error().msg;
  EXPECT_EQ(layer->format, ChunkedFormat::kZstdChunked);
  auto index = TarIndex::Open(dir_ / "index");
  ASSERT_TRUE(index.has_value()) << index.error().msg;
  auto entries = (*index)->entries();
  std::vector<std::string> paths;
  for (const IndexEntry& e : entries) paths.emplace_back((*index)->Path(e));
  EXPECT_EQ(paths, (std::vector<std::string>{"", "etc/small", "big", "empty", "etc/.wh.gone",
                                             "etc/hard"}));
  EXPECT_EQ(entries[0].mode, S_IFDIR | 0755u);
  EXPECT_EQ(entries[0].mtime_sec, 1704164645);
  EXPECT_EQ(entries[0].mtime_nsec, 500000000u);
  EXPECT_EQ(entries[1].mode, S_IFREG | 0644u);
  EXPECT_EQ(entries[4].size, 0u) << "a whiteout is an empty reg entry";
  EXPECT_EQ(entries[5].kind, EntryKind::kHardlink);

  ASSERT_EQ(layer->chunks.size(), 3u);
  EXPECT_EQ(layer->chunks[0].compressed_offset, small_);
  EXPECT_EQ(layer->chunks[0].compressed_end, small_end_) << "a file's frames end at endOffset";
  EXPECT_EQ(layer->chunks[1].compressed_end, big2_) << "a chunk's frame ends at the next chunk";
  EXPECT_EQ(layer->chunks[2].compressed_end, big_end_);
  std::string want[] = {"hello\n", std::string(5000, 'x'), std::string(3000, 'y')};
  for (size_t i = 0; i < 3; ++i) {
    const TocChunk& c = layer->chunks[i];
    EXPECT_EQ(c.inner_offset, 0u);
    auto data = DecompressChunk(layer->format,
                                std::string_view(l.blob).substr(
                                    c.compressed_offset, c.compressed_end - c.compressed_offset),
                                c);
    ASSERT_TRUE(data.has_value()) << data.error().msg;
    EXPECT_EQ(*data, want[i]);
  }
}

// ctr-remote writes zstd:chunked as it writes eStargz: a file's frame runs on into the tar
// headers after it, small files may share one (innerOffset), and there is no endOffset.
TEST_F(ZstdChunkedTest, FramesRunOnAsCtrRemoteWritesThem) {
  blob_ += Zstd("tar header");
  const uint64_t packed = blob_.size();
  blob_ += Zstd("one" + std::string("tar header of two") + "two" + "tar header");
  const uint64_t next = blob_.size();
  blob_ += Zstd("three");
  Layer l =
      Finish(R"({"version":1,"entries":[
    {"type":"reg","name":"one","size":3,"offset":)" +
             std::to_string(packed) + R"(,"chunkDigest":")" + Sha("one") + R"("},
    {"type":"reg","name":"two","size":3,"offset":)" +
             std::to_string(packed) + R"(,"innerOffset":20,"chunkDigest":")" + Sha("two") + R"("},
    {"type":"reg","name":"three","size":5,"offset":)" +
             std::to_string(next) + R"(,"chunkDigest":")" + Sha("three") + R"("}]})");
  auto layer = Index(l);
  ASSERT_TRUE(layer.has_value()) << layer.error().msg;
  ASSERT_EQ(layer->chunks.size(), 3u);
  EXPECT_EQ(layer->chunks[0].compressed_end, next);
  EXPECT_EQ(layer->chunks[1].inner_offset, 20u);
  EXPECT_EQ(layer->chunks[2].compressed_end, l.toc.offset - 8) << "the data ends at the TOC";
  std::string want[] = {"one", "two", "three"};
  for (size_t i = 0; i < 3; ++i) {
    const TocChunk& c = layer->chunks[i];
    auto data =
        DecompressZstdChunk(std::string_view(l.blob).substr(c.compressed_offset,
                                                            c.compressed_end - c.compressed_offset),
                            c);
    ASSERT_TRUE(data.has_value()) << data.error().msg;
    EXPECT_EQ(*data, want[i]);
  }
}

// A file that is itself zstd (a .zst, a compressed module) comes out as its own bytes: the
// chunk's frame is decompressed once, never again because its output looks like zstd.
TEST_F(ZstdChunkedTest, AZstdFileIsDecompressedOnce) {
  const std::string inner = Zstd(std::string(3000, 'z'));
  const uint64_t at = Frame(inner);
  const uint64_t end = blob_.size();
  Layer l = Finish(R"({"version":1,"entries":[
    {"type":"reg","name":"m.ko.zst","size":)" +
                   std::to_string(inner.size()) + R"(,"digest":")" + Sha(inner) + R"(","offset":)" +
                   std::to_string(at) + R"(,"endOffset":)" + std::to_string(end) + "}]}");
  auto layer = Index(l);
  ASSERT_TRUE(layer.has_value()) << layer.error().msg;
  ASSERT_EQ(layer->chunks.size(), 1u);
  const TocChunk& c = layer->chunks[0];
  auto data = DecompressZstdChunk(
      std::string_view(l.blob).substr(c.compressed_offset, c.compressed_end - c.compressed_offset),
      c);
  ASSERT_TRUE(data.has_value()) << data.error().msg;
  EXPECT_EQ(*data, inner);
}

TEST_F(ZstdChunkedTest, ChunkBytesAreVerified) {
  Layer l = Finish(UsualToc());
  auto layer = Index(l);
  ASSERT_TRUE(layer.has_value()) << layer.error().msg;
  TocChunk c = layer->chunks[0];  // verified by the file's digest: it has no chunkDigest
  std::string frame = l.blob.substr(c.compressed_offset, c.compressed_end - c.compressed_offset);
  c.sha256[0] ^= 1;
  auto wrong = DecompressZstdChunk(frame, c);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_NE(wrong.error().msg.find("digest mismatch"), std::string::npos) << wrong.error().msg;
  c = layer->chunks[0];
  EXPECT_FALSE(DecompressZstdChunk(frame.substr(0, frame.size() - 2), c).has_value());
  c.size -= 1;  // a prefix of the frame: decompressed, but not the bytes the digest names
  auto shorter = DecompressZstdChunk(frame, c);
  ASSERT_FALSE(shorter.has_value());
  EXPECT_NE(shorter.error().msg.find("digest mismatch"), std::string::npos) << shorter.error().msg;
  c.size += 2;
  auto longer = DecompressZstdChunk(frame, c);
  ASSERT_FALSE(longer.has_value());
  EXPECT_NE(longer.error().msg.find("end after 6 of 7"), std::string::npos) << longer.error().msg;
  c = layer->chunks[0];
  std::string bent = frame;
  ASSERT_NE(bent.find("hello"), std::string::npos) << "a raw block";
  bent[bent.find("hello")] ^= 0x55;
  auto changed = DecompressZstdChunk(bent, c);
  ASSERT_FALSE(changed.has_value());
  EXPECT_NE(changed.error().msg.find("digest mismatch"), std::string::npos) << changed.error().msg;
}

TEST_F(ZstdChunkedTest, HostileTocsAreRefusedByName) {
  std::string toc = UsualToc(R"(,{"type":"reg","name":"../../etc/passwd","size":1})");
  EXPECT_NE(Refused(toc).find("escapes the root"), std::string::npos);
  blob_.clear();
  std::string usual = UsualToc();
  Layer l = Finish(usual);
  const uint64_t data_end = l.toc.offset - 8;
  auto refused_with = [&](const std::string& entry, const std::string& why) {
    blob_.clear();
    std::string msg = Refused(UsualToc("," + entry));
    EXPECT_NE(msg.find(why), std::string::npos) << entry << ": " << msg;
  };
  const std::string digest = R"(,"digest":")" + Sha("hello\n") + "\"";
  refused_with(R"({"type":"reg","name":"past","size":6,"offset":)" + std::to_string(small_) +
                   R"(,"endOffset":)" + std::to_string(data_end + 100) + digest + "}",
               "endOffset");
  refused_with(R"({"type":"reg","name":"back","size":6,"offset":)" + std::to_string(small_) +
                   R"(,"endOffset":)" + std::to_string(small_) + digest + "}",
               "endOffset");
  refused_with(R"({"type":"reg","name":"outside","size":6,"offset":)" +
                   std::to_string(data_end + 10) + digest + "}",
               "outside the data");
  refused_with(
      R"({"type":"reg","name":"twice","size":6,"offset":)" + std::to_string(small_) + digest + "}",
      "overlap");
  refused_with(
      R"({"type":"reg","name":"nodigest","size":6,"offset":)" + std::to_string(small_) + "}",
      "without a sha256");
  refused_with(R"({"type":"reg","name":"partial","size":9000,"offset":)" + std::to_string(small_) +
                   R"(,"chunkSize":6,"digest":")" + Sha("hello\n") + "\"}",
               "without a sha256");
}

}  // namespace zstd_chunked_test
}  // namespace imagefs
