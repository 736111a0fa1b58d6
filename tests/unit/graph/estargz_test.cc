// eStargz footer, TOC and chunks: a hand-made layer (each case bends one thing), read as
// stargz-snapshotter would. Real ctr-remote layers are checked by tests/tools/estargz_check,
// which stargz_test.sh runs.
#include "graph/estargz.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>

#include "graph/tar_index.h"
#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {
namespace {

using testing::Gzip;
using testing::MakeTar;
using testing::ScratchDir;

std::string Footer(uint64_t toc_offset) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(toc_offset));
  std::string f("\x1f\x8b\x08\x04\0\0\0\0\0\xff", 10);
  f += std::string("\x1a\0SG\x16\0", 6) + hex + "STARGZ";
  f += std::string("\x01\0\0\xff\xff\0\0\0\0\0\0\0\0", 13);
  return f;
}

std::string Sha(const std::string& data) { return Sha256::Of(data).str(); }

// A layer of data members and a TOC, as the test writes them: files' data where the TOC
// says; the TOC as given (so that each case can bend it).
struct Layer {
  std::string blob;
  uint64_t toc_offset = 0;
  std::string toc;
};

class EstargzTest : public ::testing::Test {
 protected:
  // Appends data as one gzip member; returns its offset.
  uint64_t Member(const std::string& data) {
    uint64_t at = blob_.size();
    blob_ += Gzip(data);
    return at;
  }
  Layer Finish(const std::string& toc) {
    Layer l;
    l.toc_offset = blob_.size();
    l.toc = toc;
    l.blob = blob_ + Gzip(MakeTar({{"stargz.index.json", toc}})) + Footer(l.toc_offset);
    return l;
  }
  Result<ChunkedLayout> Index(const Layer& l) {
    return WriteStargzIndex(l.toc, Sha256::Of(l.toc), l.toc_offset, dir_ / "index");
  }
  // A TOC over members of the usual files: a.txt (one chunk), big (two), a landmark.
  std::string UsualToc(const std::string& extra_entries = "") {
    a_ = Member("hello\n");
    landmark_ = Member("v");
    big1_ = Member(std::string(5000, 'x'));
    big2_ = Member(std::string(3000, 'y'));
    return R"({"version":1,"entries":[
      {"name":"etc/","type":"dir","modtime":"2023-11-14T22:13:21Z","mode":493},
      {"name":"etc/a.txt","type":"reg","size":6,"modtime":"2023-11-14T22:13:21.25+01:00",
       "mode":2541,"uid":1,"gid":2,"offset":)" +
           std::to_string(a_) + R"(,"chunkDigest":")" + Sha("hello\n") + R"(",
       "xattrs":{"user.k":"dsOp"}},
      {"name":".prefetch.landmark","type":"reg","size":1,"offset":)" +
           std::to_string(landmark_) + R"(,"chunkDigest":")" + Sha("v") + R"("},
      {"name":"etc/link","type":"symlink","linkName":"a.txt","mode":511},
      {"name":"etc/hard","type":"hardlink","linkName":"etc/a.txt"},
      {"name":"dev/null","type":"char","mode":438,"devMajor":1,"devMinor":3},
      {"name":"empty","type":"reg","mode":384},
      {"name":"big","type":"reg","size":8000,"offset":)" +
           std::to_string(big1_) + R"(,"chunkSize":5000,"chunkDigest":")" +
           Sha(std::string(5000, 'x')) + R"("},
      {"name":"big","type":"chunk","offset":)" +
           std::to_string(big2_) + R"(,"chunkOffset":5000,"chunkDigest":")" +
           Sha(std::string(3000, 'y')) + R"("})" + extra_entries + "]}";
  }
  std::string Refused(const std::string& toc) {
    auto r = Index(Finish(toc));
    EXPECT_FALSE(r.has_value());
    return r ? "" : r.error().msg;
  }

  EstargzTest() { Member("tar headers would be here"); }

  ScratchDir dir_;
  std::string blob_;
  uint64_t a_ = 0, landmark_ = 0, big1_ = 0, big2_ = 0;
};

TEST_F(EstargzTest, FooterGivesTheTocOffset) {
  Layer l = Finish(R"({"version":1,"entries":[]})");
  auto f = ParseStargzFooter(std::string_view(l.blob).substr(l.blob.size() - 51), l.blob.size());
  ASSERT_TRUE(f.has_value()) << f.error().msg;
  EXPECT_EQ(f->toc_offset, l.toc_offset);
  EXPECT_EQ(f->footer_size, 51u);
  // stargz's 47-byte footer: the 22 bytes are the whole extra field.
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(l.toc_offset));
  std::string legacy = std::string("\x1f\x8b\x08\x04\0\0\0\0\0\xff\x16\0", 12) + hex + "STARGZ" +
                       std::string("\x01\0\0\xff\xff\0\0\0\0\0\0\0\0", 13);
  ASSERT_EQ(legacy.size(), 47u);
  auto g = ParseStargzFooter(legacy, l.toc_offset + 1000);
  ASSERT_TRUE(g.has_value()) << g.error().msg;
  EXPECT_EQ(g->toc_offset, l.toc_offset);
  EXPECT_EQ(g->footer_size, 47u);
}

TEST_F(EstargzTest, FooterRefusesWhatIsNotOne) {
  std::string f = Footer(100);
  EXPECT_FALSE(ParseStargzFooter(f, 100 + 51).has_value()) << "TOC offset at the footer";
  EXPECT_FALSE(ParseStargzFooter(f, 90).has_value()) << "blob smaller than the offset";
  std::string bad = f;
  bad[33] = 'X';  // STARGZ -> SXARGZ
  EXPECT_FALSE(ParseStargzFooter(bad, 1000).has_value());
  bad = f;
  bad[20] = 'g';  // not hex
  EXPECT_FALSE(ParseStargzFooter(bad, 1000).has_value());
  EXPECT_FALSE(ParseStargzFooter("short", 1000).has_value());
  EXPECT_FALSE(ParseStargzFooter(std::string(51, '\0'), 1000).has_value());
}

TEST_F(EstargzTest, TocComesOutOfItsMember) {
  Layer l = Finish(R"({"version":1,"entries":[]})");
  std::string_view member =
      std::string_view(l.blob).substr(l.toc_offset, l.blob.size() - 51 - l.toc_offset);
  auto toc = ExtractStargzToc(member);
  ASSERT_TRUE(toc.has_value()) << toc.error().msg;
  EXPECT_EQ(*toc, l.toc);
  auto cut = ExtractStargzToc(member.substr(0, member.size() / 2));
  ASSERT_FALSE(cut.has_value());
  EXPECT_NE(cut.error().msg.find("cut short"), std::string::npos) << cut.error().msg;
  auto other = ExtractStargzToc(Gzip(MakeTar({{"other.json", "{}"}})));
  ASSERT_FALSE(other.has_value());
  EXPECT_NE(other.error().msg.find("no stargz.index.json"), std::string::npos);
  EXPECT_FALSE(ExtractStargzToc("not gzip at all").has_value());
}

TEST_F(EstargzTest, IndexHoldsTheEntriesAndChunksServeTheData) {
  Layer l = Finish(UsualToc());
  auto layer = Index(l);
  ASSERT_TRUE(layer.has_value()) << layer.error().msg;
  auto index = TarIndex::Open(dir_ / "index");
  ASSERT_TRUE(index.has_value()) << index.error().msg;
  auto entries = (*index)->entries();
  ASSERT_EQ(entries.size(), 7u) << "the landmark is format, not a file";
  std::vector<std::string> paths;
  for (const IndexEntry& e : entries) paths.emplace_back((*index)->Path(e));
  EXPECT_EQ(paths, (std::vector<std::string>{"etc", "etc/a.txt", "etc/link", "etc/hard", "dev/null",
                                             "empty", "big"}));
  const IndexEntry& a = entries[1];
  EXPECT_EQ(a.kind, EntryKind::kFile);
  EXPECT_EQ(a.mode, S_IFREG | 04755u);
  EXPECT_EQ(a.uid, 1u);
  EXPECT_EQ(a.gid, 2u);
  EXPECT_EQ(a.size, 6u);
  EXPECT_EQ(a.mtime_sec, 1700000001 - 3600);
  EXPECT_EQ(a.mtime_nsec, 250000000u);
  ASSERT_EQ((*index)->Xattrs(a).size(), 1u);
  const IndexXattr& x = (*index)->Xattrs(a)[0];
  EXPECT_EQ((*index)->Str(x.name_off, x.name_len), "user.k");
  EXPECT_EQ((*index)->Str(x.value_off, x.value_len), "v\xc3\xa9");
  EXPECT_EQ(entries[0].mode, S_IFDIR | 0755u);
  EXPECT_EQ(entries[0].mtime_sec, 1700000001);
  EXPECT_EQ((*index)->Link(entries[2]), "a.txt");
  EXPECT_EQ(entries[3].kind, EntryKind::kHardlink);
  EXPECT_EQ((*index)->Link(entries[3]), "etc/a.txt");
  EXPECT_EQ(entries[4].mode, S_IFCHR | 0666u);
  EXPECT_EQ(entries[4].rdev_major, 1u);
  EXPECT_EQ(entries[4].rdev_minor, 3u);
  EXPECT_EQ(entries[5].size, 0u);
  EXPECT_EQ(entries[5].mtime_sec, 0) << "no modtime: the epoch, as the tar says";

  // Chunks: a.txt's, then big's two; the landmark came after a.txt.
  ASSERT_EQ(layer->chunks.size(), 3u);
  EXPECT_EQ(layer->prefetch_chunks, 1u);
  const TocChunk& c0 = layer->chunks[0];
  EXPECT_EQ(c0.content_offset, a.data_offset);
  EXPECT_EQ(c0.compressed_offset, a_);
  EXPECT_EQ(c0.compressed_end, landmark_) << "a member ends where the next one starts";
  const IndexEntry& big = entries[6];
  EXPECT_EQ(big.data_offset % 4096, 0u);
  EXPECT_EQ(layer->chunks[1].content_offset, big.data_offset);
  EXPECT_EQ(layer->chunks[1].size, 5000u);
  EXPECT_EQ(layer->chunks[2].content_offset, big.data_offset + 5000);
  EXPECT_EQ(layer->chunks[2].size, 3000u);
  EXPECT_EQ(layer->chunks[2].compressed_end, l.toc_offset) << "the last member ends at the TOC";
  EXPECT_EQ(layer->content_size, big.data_offset + 8192);

  std::string want[] = {"hello\n", std::string(5000, 'x'), std::string(3000, 'y')};
  for (size_t i = 0; i < 3; ++i) {
    const TocChunk& c = layer->chunks[i];
    auto data = InflateStargzChunk(std::string_view(l.blob).substr(
                                       c.compressed_offset, c.compressed_end - c.compressed_offset),
                                   c);
    ASSERT_TRUE(data.has_value()) << data.error().msg;
    EXPECT_EQ(*data, want[i]);
  }
}

TEST_F(EstargzTest, ChunkBytesAreVerified) {
  Layer l = Finish(UsualToc());
  auto layer = Index(l);
  ASSERT_TRUE(layer.has_value()) << layer.error().msg;
  TocChunk c = layer->chunks[1];
  std::string member = l.blob.substr(c.compressed_offset, c.compressed_end - c.compressed_offset);
  c.sha256[0] ^= 1;
  auto wrong = InflateStargzChunk(member, c);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_NE(wrong.error().msg.find("digest mismatch"), std::string::npos) << wrong.error().msg;
  c = layer->chunks[1];
  EXPECT_FALSE(InflateStargzChunk(member.substr(0, member.size() / 3), c).has_value());
  member[member.size() / 2] ^= 0x55;
  EXPECT_FALSE(InflateStargzChunk(member, c).has_value());
  c.size += 1;  // more than the member holds
  EXPECT_FALSE(InflateStargzChunk(l.blob.substr(c.compressed_offset, 20000), c).has_value());
}

TEST_F(EstargzTest, TocDigestMustMatch) {
  Layer l = Finish(UsualToc());
  auto r = WriteStargzIndex(l.toc, Sha256::Of("other"), l.toc_offset, dir_ / "index");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().msg.find("TOC digest mismatch"), std::string::npos) << r.error().msg;
}

TEST_F(EstargzTest, HostileTocsAreRefusedByName) {
  auto reg = [&](const std::string& name, const std::string& data, const std::string& more) {
    uint64_t at = Member(data);
    return R"({"name":")" + name + R"(","type":"reg","size":)" + std::to_string(data.size()) +
           R"(,"offset":)" + std::to_string(at) + R"(,"chunkDigest":")" + Sha(data) + "\"" + more +
           "}";
  };
  auto toc = [](const std::string& entries) {
    return R"({"version":1,"entries":[)" + entries + "]}";
  };
  EXPECT_NE(Refused(toc(reg("../../etc/passwd", "x", ""))).find("escapes the root"),
            std::string::npos);
  EXPECT_NE(Refused(toc(reg("a", "x", "") +
                        R"(,{"name":"b","type":"reg","size":2,"offset":1)"
                        R"(000000,"chunkDigest":")" +
                        Sha("yy") + "\"}"))
                .find("outside the data"),
            std::string::npos);
  EXPECT_NE(Refused(toc(R"({"name":"a","type":"reg","size":2})")).find("outside the data"),
            std::string::npos)
      << "data without an offset";
  EXPECT_NE(Refused(toc(reg("a", "xy", R"(,"chunkSize":1)"))).find("cover 1 of its 2"),
            std::string::npos)
      << "a chunk missing";
  std::string two = reg("a", "xy", R"(,"chunkSize":1)");
  uint64_t second = Member("y");
  EXPECT_NE(Refused(toc(two + R"(,{"name":"a","type":"chunk","chunkOffset":0,"offset":)" +
                        std::to_string(second) + R"(,"chunkDigest":")" + Sha("y") + "\"}"))
                .find("chunks overlap"),
            std::string::npos);
  EXPECT_NE(
      Refused(toc(R"({"name":"b","type":"chunk","offset":30,"chunkDigest":")" + Sha("y") + "\"}"))
          .find("chunk of no file"),
      std::string::npos);
  uint64_t at = Member("z");
  EXPECT_NE(
      Refused(toc(R"({"name":"a","type":"reg","size":1,"offset":)" + std::to_string(at) + "}"))
          .find("without a sha256 chunkDigest"),
      std::string::npos);
  EXPECT_NE(Refused(toc(R"({"name":"a","type":"whiteout"})")).find("unknown type"),
            std::string::npos);
  EXPECT_NE(Refused(toc(R"({"name":"a","type":"dir","mode":-1})")).find("negative"),
            std::string::npos);
  EXPECT_NE(Refused(toc(R"({"name":"a","type":"dir","uid":1.5})")).find("not an integer"),
            std::string::npos);
  EXPECT_NE(Refused(toc(R"({"name":"a","type":"dir","uid":4294967296})")).find("out of range"),
            std::string::npos);
  EXPECT_NE(Refused(toc(R"({"name":"a","type":"dir","modtime":"yesterday"})")).find("RFC 3339"),
            std::string::npos);
  EXPECT_NE(Refused(R"({"version":2,"entries":[]})").find("version 2"), std::string::npos);
  EXPECT_NE(Refused(R"({"version":1})").find("no \"entries\""), std::string::npos);
  EXPECT_NE(Refused(R"({"version":1,"entries":[)").find("not valid JSON"), std::string::npos);
  EXPECT_NE(Refused(toc(R"({"name":"a","type":"reg","size":100000000,"offset":30,)"
                        R"("chunkDigest":")" +
                        Sha("") + "\"}"))
                .find("larger than 64 MiB"),
            std::string::npos);
  // Two files packed in one member must not overlap in it.
  uint64_t shared = Member("abcdef");
  std::string packed =
      R"({"name":"p","type":"reg","size":4,"offset":)" + std::to_string(shared) +
      R"(,"chunkDigest":")" + Sha("abcd") + R"("},{"name":"q","type":"reg","size":3,"offset":)" +
      std::to_string(shared) + R"(,"innerOffset":3,"chunkDigest":")" + Sha("def") + "\"}";
  EXPECT_NE(Refused(toc(packed)).find("overlap in the member"), std::string::npos);
}

TEST_F(EstargzTest, FilesPackedInOneMemberAreServed) {
  uint64_t shared = Member("abcdef");
  Layer l = Finish(R"({"version":1,"entries":[{"name":"p","type":"reg","size":4,"offset":)" +
                   std::to_string(shared) + R"(,"chunkDigest":")" + Sha("abcd") +
                   R"("},{"name":"q","type":"reg","size":2,"offset":)" + std::to_string(shared) +
                   R"(,"innerOffset":4,"chunkDigest":")" + Sha("ef") + "\"}]}");
  auto layer = Index(l);
  ASSERT_TRUE(layer.has_value()) << layer.error().msg;
  ASSERT_EQ(layer->chunks.size(), 2u);
  const TocChunk& q = layer->chunks[1];
  auto data = InflateStargzChunk(
      std::string_view(l.blob).substr(q.compressed_offset, q.compressed_end - q.compressed_offset),
      q);
  ASSERT_TRUE(data.has_value()) << data.error().msg;
  EXPECT_EQ(*data, "ef");
}

}  // namespace
}  // namespace imagefs
