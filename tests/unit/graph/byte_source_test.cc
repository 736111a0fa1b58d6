#include "graph/byte_source.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "test_util.h"

namespace imagefs {
namespace {

using testing::Gzip;

std::string Text(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) s += "line " + std::to_string(rng() % 1000) + " of something compressible\n";
  s.resize(n);
  return s;
}

// Hands out its bytes in pieces of at most `step`, as a network body does.
class TrickleSource final : public ByteSource {
 public:
  TrickleSource(std::string data, size_t step) : data_(std::move(data)), step_(step) {}
  Result<size_t> Read(char* buf, size_t len) override {
    size_t n = std::min({len, step_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t step_;
  size_t pos_ = 0;
};

Result<std::string> ReadAll(std::string input, size_t step = 1 << 20, size_t out_step = 1 << 20) {
  auto src = Decompress(std::make_unique<TrickleSource>(std::move(input), step), "test.gz");
  std::string out, buf(out_step, '\0');
  while (true) {
    ASSIGN_OR_RETURN(size_t n, src->Read(buf.data(), buf.size()));
    if (n == 0) return out;
    out.append(buf.data(), n);
  }
}

TEST(Decompress, GzipOneMemberAnyChunking) {
  std::string text = Text(3 << 20, 1);
  std::string gz = Gzip(text);
  for (auto [in, out] :
       {std::pair<size_t, size_t>{1 << 20, 1 << 20}, {1, 7}, {4093, 100000}, {65536, 1}}) {
    auto got = ReadAll(gz, in, out);
    ASSERT_TRUE(got) << got.error().msg;
    EXPECT_EQ(*got, text) << "input pieces " << in << ", output pieces " << out;
  }
}

TEST(Decompress, GzipMembersFollowEachOther) {
  std::string a = Text(100000, 2), b = Text(50000, 3), c = Text(1, 4);
  auto got = ReadAll(Gzip(a) + Gzip(b) + Gzip(c), 333);
  ASSERT_TRUE(got) << got.error().msg;
  EXPECT_EQ(*got, a + b + c);
}

TEST(Decompress, GzipMemberBoundaryAtEveryOffsetOfARead) {
  std::string a = Text(20000, 8), b = Text(30000, 9);
  std::string ga = Gzip(a), gz = ga + Gzip(b);
  // Input pieces that end 0, 1, 2 and 3 bytes after the first member: the next member's
  // magic split across reads.
  for (size_t extra : {0, 1, 2, 3}) {
    auto got = ReadAll(gz, ga.size() + extra);
    ASSERT_TRUE(got) << got.error().msg;
    EXPECT_EQ(*got, a + b) << "the first read ends " << extra << " bytes into the second member";
  }
  for (size_t step : {1, 2, 3}) {
    auto got = ReadAll(gz, step);
    ASSERT_TRUE(got) << got.error().msg;
    EXPECT_EQ(*got, a + b) << "pieces of " << step;
  }
}

TEST(Decompress, GzipTrailingBytesThatStartNoMemberAreIgnored) {
  std::string a = Text(10000, 5);
  auto got = ReadAll(Gzip(a) + std::string(512, '\0'));
  ASSERT_TRUE(got) << got.error().msg;
  EXPECT_EQ(*got, a);
}

TEST(Decompress, GzipTruncatedOrCorruptIsAnError) {
  std::string gz = Gzip(Text(200000, 6));
  auto cut = ReadAll(gz.substr(0, gz.size() / 2));
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().msg.find("truncated"), std::string::npos) << cut.error().msg;
  auto no_trailer = ReadAll(gz.substr(0, gz.size() - 4));
  ASSERT_FALSE(no_trailer);
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x55;  // in the CRC-32 of the trailer
  auto crc = ReadAll(bad_crc);
  ASSERT_FALSE(crc);
  EXPECT_NE(crc.error().msg.find("checksum"), std::string::npos) << crc.error().msg;
  std::string garbled = gz;
  for (size_t i = 100; i < 200; ++i) garbled[i] = static_cast<char>(i);
  EXPECT_FALSE(ReadAll(garbled));
}

TEST(Decompress, PlainAndEmptyStreamsPassThrough) {
  std::string plain = Text(5000, 7);
  auto got = ReadAll(plain, 1);
  ASSERT_TRUE(got) << got.error().msg;
  EXPECT_EQ(*got, plain);
  auto empty = ReadAll("");
  ASSERT_TRUE(empty) << empty.error().msg;
  EXPECT_EQ(*empty, "");
  auto one = ReadAll("\x1f");
  ASSERT_TRUE(one) << one.error().msg;
  EXPECT_EQ(*one, "\x1f");
}

TEST(Decompress, AnErrorBeforeTheFirstByteIsKept) {
  class Broken final : public ByteSource {
   public:
    Result<size_t> Read(char*, size_t) override { return Fail(Code::kNetwork, "connection reset"); }
  };
  auto src = Decompress(std::make_unique<Broken>(), "x");
  char buf[16];
  auto n = src->Read(buf, sizeof buf);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Code::kNetwork);
}

}  // namespace
}  // namespace imagefs
