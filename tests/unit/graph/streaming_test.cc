// Plain layers served while they arrive: ScanTar over growing prefixes of a tar, and a
// StreamingRootfs of two StreamingLayers fed by hand as the store would feed them,
// answering each question only once no member still to come can change it.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <future>

#include "graph/base/fs_util.h"
#include "graph/streaming_rootfs.h"
#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {
namespace streaming_test {

using testing::MakeTar;
using testing::ScratchDir;
using namespace std::chrono_literals;

std::vector<ScannedMember> ScanWhole(const std::string& tar) {
  std::vector<ScannedMember> out;
  auto end = ScanTar(tar.data(), tar.size(), 0, TarScanMode::kWhole, [&](ScannedMember& m) {
    out.push_back(m);
    return Status{};
  });
  EXPECT_TRUE(end && end->whole);
  return out;
}

std::string SampleTar() {
  return MakeTar({{"etc", "", S_IFDIR},
                  {"etc/empty", ""},
                  {"etc/one", "1"},
                  {"etc/" + std::string(150, 'n'), std::string(600, 'x')},  // a PAX name
                  {"etc/big", std::string(70000, 'b')},
                  {"etc/link", "", S_IFLNK, "one"},
                  {"etc/hard", "", S_IFREG, "etc/one", true},
                  {"etc/tail", std::string(5000, 't')}});
}

// Scanned as the store writes it, a prefix at a time, the tar gives the whole scan's
// members in order with the same offsets, a plain file as soon as its first bytes are in.
TEST(ScanTarPrefix, EveryPrefixGivesTheWholeScansMembersInOrder) {
  const std::string tar = SampleTar();
  const std::vector<ScannedMember> whole = ScanWhole(tar);
  ASSERT_EQ(whole.size(), 8u);
  for (size_t step : {1u, 100u, 512u, 4096u, 65536u}) {
    std::vector<ScannedMember> got;
    uint64_t resume = 0;
    for (size_t len = 0;; len = std::min(tar.size(), len + step)) {
      auto end = ScanTar(tar.data(), len, resume, TarScanMode::kPrefix, [&](ScannedMember& m) {
        if (!got.empty() && got.back().header_at >= m.header_at) return Status{};
        got.push_back(m);
        return Status{};
      });
      ASSERT_TRUE(end) << "prefix " << len << ": " << end.error().msg;
      resume = end->resume;
      ASSERT_LE(got.size(), whole.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].path, whole[i].path) << "prefix " << len;
        EXPECT_EQ(got[i].entry.data_offset, whole[i].entry.data_offset) << got[i].path;
        EXPECT_EQ(got[i].entry.size, whole[i].entry.size) << got[i].path;
        EXPECT_EQ(got[i].link, whole[i].link) << got[i].path;
      }
      if (len == tar.size()) break;
    }
    EXPECT_EQ(got.size(), whole.size()) << "step " << step;
  }
  // A prefix cut inside a member's header gives the members before it only.
  size_t big_header = whole[4].header_at;
  size_t n = 0;
  ASSERT_TRUE(ScanTar(tar.data(), big_header + 100, 0, TarScanMode::kPrefix, [&](ScannedMember&) {
    ++n;
    return Status{};
  }));
  EXPECT_EQ(n, 4u);
}

TEST(ScanTarPrefix, AWholeScanOfACutTarIsAnError) {
  const std::string tar = SampleTar();
  auto end = ScanTar(tar.data(), tar.size() / 2, 0, TarScanMode::kWhole,
                     [](ScannedMember&) { return Status{}; });
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().code, Code::kCorrupt);
}

// One layer's tar, written into a file a piece at a time, as the store writes it.
class FedLayer {
 public:
  FedLayer(const std::filesystem::path& dir, std::string name, std::string tar,
           std::shared_ptr<StreamSignal> signal)
      : tar_(std::move(tar)) {
    path_ = dir / (name + ".tar");
    fd_ = *OpenFile(path_, O_RDWR | O_CREAT | O_TRUNC, 0600);
    layer = std::make_shared<StreamingLayer>(Sha256::Of(tar_), dir, std::move(signal));
    layer->Started(fd_.get());
  }
  // Writes the tar up to `upto` bytes (or all of it, then ends it).
  void FeedTo(size_t upto) {
    upto = std::min(upto, tar_.size());
    if (upto > written_) {
      ASSERT_EQ(pwrite(fd_.get(), tar_.data() + written_, upto - written_, written_),
                static_cast<ssize_t>(upto - written_));
      written_ = upto;
      layer->Wrote(written_);
    }
  }
  void FeedAll() {
    FeedTo(tar_.size());
    layer->Ended(written_);
  }
  size_t HeaderOf(const std::string& path) const {
    for (const ScannedMember& m : ScanWhole(tar_)) {
      if (m.path == path) return m.header_at;
    }
    return SIZE_MAX;
  }
  size_t DataOf(const std::string& path) const {
    for (const ScannedMember& m : ScanWhole(tar_)) {
      if (m.path == path) return m.entry.data_offset;
    }
    return SIZE_MAX;
  }
  std::shared_ptr<StreamingLayer> layer;

 private:
  std::string tar_;
  std::filesystem::path path_;
  UniqueFd fd_;
  size_t written_ = 0;
};

template <typename T>
bool Answered(std::future<T>& f, std::chrono::milliseconds wait = 100ms) {
  return f.wait_for(wait) == std::future_status::ready;
}

class StreamingRootfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal_ = std::make_shared<StreamSignal>();
    base_ = std::make_unique<FedLayer>(dir_.path(), "base",
                                       MakeTar({{"etc", "", S_IFDIR},
                                                {"etc/a", "base a"},
                                                {"etc/b", "base b"},
                                                {"etc/big", std::string(200000, 'g')},
                                                {"etc/late", "late"}}),
                                       signal_);
    top_ = std::make_unique<FedLayer>(dir_.path(), "top",
                                      MakeTar({{"usr", "", S_IFDIR},
                                               {"usr/top.txt", "top"},
                                               {"etc", "", S_IFDIR},
                                               {"etc/.wh.b", ""},
                                               {"etc/a2", std::string(100000, 'u')}}),
                                      signal_);
    rootfs_ = std::make_shared<StreamingRootfs>(
        "test/image",
        std::vector<StreamingRootfs::Layer>{{nullptr, base_->layer}, {nullptr, top_->layer}},
        signal_);
  }
  std::future<Result<StreamingRootfs::Node>> FindLater(const std::string& path) {
    return std::async(std::launch::async, [rootfs = rootfs_, path] { return rootfs->Find(path); });
  }
  static std::string ReadAll(const StreamingRootfs::Node& n, uint64_t off, size_t len) {
    std::string buf(len, '\0');
    auto got = n.tree->Read(n.id, off, len, buf.data());
    if (!got) return "error: " + got.error().msg;
    buf.resize(*got);
    return buf;
  }

  ScratchDir dir_;
  std::shared_ptr<StreamSignal> signal_;
  std::unique_ptr<FedLayer> base_, top_;
  std::shared_ptr<StreamingRootfs> rootfs_;
};

TEST_F(StreamingRootfsTest, AnswersEachPathOnceNothingAboveCanChangeIt) {
  auto top_file = FindLater("usr/top.txt");
  auto base_file = FindLater("etc/a");
  EXPECT_FALSE(Answered(top_file));
  // The top layer decides its own entries as they arrive.
  top_->FeedTo(top_->DataOf("usr/top.txt") + 3);
  ASSERT_TRUE(Answered(top_file, 10s));
  auto top = top_file.get();
  ASSERT_TRUE(top) << top.error().msg;
  EXPECT_EQ(ReadAll(*top, 0, 100), "top");
  // Its own layer still arriving, a later member of the same path could replace it: the
  // answer is not to be cached yet.
  EXPECT_FALSE(top->settled);
  // A base entry waits for every layer above to be indexed completely, its own arrival
  // is not enough: a whiteout later in the top layer could still hide it.
  base_->FeedAll();
  EXPECT_FALSE(Answered(base_file));
  auto whited = FindLater("etc/b");
  top_->FeedAll();
  ASSERT_TRUE(Answered(base_file, 10s));
  auto a = base_file.get();
  ASSERT_TRUE(a) << a.error().msg;
  EXPECT_EQ(ReadAll(*a, 0, 100), "base a");
  auto again = rootfs_->Find("usr/top.txt");
  ASSERT_TRUE(again) << again.error().msg;
  EXPECT_TRUE(again->settled);
  ASSERT_TRUE(Answered(whited, 10s));
  auto b = whited.get();
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kNotFound);
}

TEST_F(StreamingRootfsTest, AbsenceAndListingsWaitForEveryLayer) {
  top_->FeedAll();
  auto missing = FindLater("etc/nothing");
  auto listing = std::async(std::launch::async,
                            [rootfs = rootfs_] { return rootfs->FindWhenComplete("etc"); });
  base_->FeedTo(base_->HeaderOf("etc/late"));
  EXPECT_FALSE(Answered(missing));
  EXPECT_FALSE(Answered(listing));
  base_->FeedAll();
  ASSERT_TRUE(Answered(missing, 10s));
  EXPECT_EQ(missing.get().error().code, Code::kNotFound);
  ASSERT_TRUE(Answered(listing, 10s));
  auto etc = listing.get();
  ASSERT_TRUE(etc) << etc.error().msg;
  std::vector<std::string> names;
  for (uint32_t c : etc->tree->Children(etc->id)) names.emplace_back(etc->tree->Name(c));
  EXPECT_EQ(names, (std::vector<std::string>{"a", "a2", "big", "late"}));
}

// A read waits for its bytes, not for the file's end.
TEST_F(StreamingRootfsTest, ReadsWaitForTheirBytes) {
  top_->FeedAll();
  const size_t data = base_->DataOf("etc/big");
  base_->FeedTo(data + 10000);
  auto big = rootfs_->Find("etc/big");
  ASSERT_TRUE(big) << big.error().msg;
  EXPECT_EQ(big->tree->Attr(big->id).size, 200000u);
  EXPECT_EQ(ReadAll(*big, 0, 4096), std::string(4096, 'g'));
  auto later = std::async(std::launch::async, [&] { return ReadAll(*big, 150000, 4096); });
  EXPECT_FALSE(Answered(later));
  base_->FeedTo(data + 160000);
  ASSERT_TRUE(Answered(later, 10s));
  EXPECT_EQ(later.get(), std::string(4096, 'g'));
}

// A layer that turns out wrong: what it decides and every read of it is EIO from then on,
// bytes read before included; what the layers above decide alone still stands.
TEST_F(StreamingRootfsTest, AFailedLayerMakesWhatItDecidesEio) {
  top_->FeedAll();
  base_->FeedTo(base_->DataOf("etc/big") + 10000);
  auto big = rootfs_->Find("etc/big");
  ASSERT_TRUE(big) << big.error().msg;
  EXPECT_EQ(ReadAll(*big, 0, 10), std::string(10, 'g'));
  auto waiting = FindLater("etc/late");
  base_->layer->Failed(Error{Code::kCorrupt, EIO, "layer content does not match its DiffID"});
  EXPECT_EQ(ReadAll(*big, 0, 10).substr(0, 7), "error: ");
  ASSERT_TRUE(Answered(waiting, 10s));
  auto late = waiting.get();
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().ToErrno(), EIO);
  EXPECT_NE(late.error().msg.find("does not match its DiffID"), std::string::npos);
  auto top = rootfs_->Find("usr/top.txt");
  ASSERT_TRUE(top) << top.error().msg;
  EXPECT_EQ(ReadAll(*top, 0, 100), "top");
  EXPECT_FALSE(rootfs_->Complete());
}

// A download that starts again after bytes were served cannot vouch for them.
TEST_F(StreamingRootfsTest, ARestartAfterServingFailsTheLayer) {
  top_->FeedTo(top_->DataOf("usr/top.txt") + 3);
  ASSERT_TRUE(rootfs_->Find("usr/top.txt"));
  top_->layer->Started(-1);
  auto top = rootfs_->Find("usr/top.txt");
  ASSERT_FALSE(top);
  EXPECT_EQ(top.error().ToErrno(), EIO);
}

// The store holding the layer from a download other than the one served from, which was
// cut: what was served cannot be vouched for.
TEST_F(StreamingRootfsTest, StoredAfterACutFeedFailsTheLayer) {
  top_->FeedTo(top_->DataOf("usr/top.txt") + 3);
  ASSERT_TRUE(rootfs_->Find("usr/top.txt"));
  auto blob = std::make_shared<LayerBlob>();
  top_->layer->Stored(blob);
  auto top = rootfs_->Find("usr/top.txt");
  ASSERT_FALSE(top);
  EXPECT_EQ(top.error().ToErrno(), EIO);
}

// A download that failed before its first byte, the layer then stored by another: nothing
// was served, so the stored blob serves.
TEST_F(StreamingRootfsTest, StoredAfterAFeedThatWroteNothingServes) {
  base_->FeedAll();
  auto whole = base_->layer->Current();
  ASSERT_TRUE(whole && whole->indexed);
  auto fd = OpenFile(dir_ / "empty.tar", O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_TRUE(fd);
  auto fresh = std::make_shared<StreamingLayer>(base_->layer->diff_id(), dir_.path(), signal_);
  fresh->Started(fd->get());  // began, wrote nothing
  fresh->Stored(whole->blob);
  auto state = fresh->Current();
  ASSERT_TRUE(state) << state.error().msg;
  EXPECT_FALSE(state->failed);
  EXPECT_TRUE(state->indexed);
  EXPECT_EQ(state->blob, whole->blob);
}

// A second image streaming the same base shares its layer: the one feed answers both, each
// image's waiters are woken, and one image's failed pull does not fail what the other's
// still feeds; the last holder's does.
TEST_F(StreamingRootfsTest, ImagesStreamingOneLayerShareItsFeed) {
  auto other_signal = std::make_shared<StreamSignal>();
  FedLayer other_top(dir_.path(), "other-top", MakeTar({{"opt", "", S_IFDIR}}), other_signal);
  ASSERT_TRUE(base_->layer->Share(other_signal));
  auto other = std::make_shared<StreamingRootfs>(
      "test/other",
      std::vector<StreamingRootfs::Layer>{{nullptr, base_->layer}, {nullptr, other_top.layer}},
      other_signal);
  other_top.FeedAll();
  auto waiting = std::async(std::launch::async, [other] { return other->Find("etc/a"); });
  EXPECT_FALSE(Answered(waiting));
  base_->FeedTo(base_->DataOf("etc/a") + 6);  // fed once, by the first image's download
  ASSERT_TRUE(Answered(waiting, 10s));
  auto a = waiting.get();
  ASSERT_TRUE(a) << a.error().msg;
  EXPECT_EQ(ReadAll(*a, 0, 100), "base a");
  // The first image's pull fails (say, its own top layer did): it gives the base back.
  base_->layer->Release(Error{Code::kNetwork, EIO, "the first image's pull failed"});
  base_->FeedAll();
  auto late = other->Find("etc/late");
  ASSERT_TRUE(late) << late.error().msg;
  EXPECT_TRUE(other->Complete());
  // The last holder's failure ends the layer: nothing would feed it any more.
  other->layers()[0].streaming->Release(Error{Code::kNetwork, EIO, "its pull failed too"});
  auto after = other->Find("etc/late");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().ToErrno(), EIO);
  // A failed layer is not shared: the next image streams its own.
  EXPECT_FALSE(base_->layer->Share(std::make_shared<StreamSignal>()));
}

// A reporter added once the layer failed (an image sharing it late) is told at once; a
// holder's Release after the layer was stored changes nothing.
TEST_F(StreamingRootfsTest, LateReportersAreToldAndReleaseAfterStoredIsHarmless) {
  top_->layer->Failed(Error{Code::kCorrupt, EIO, "layer content does not match its DiffID"});
  std::string told;
  top_->layer->AddFailureReporter([&](const Error& e) { told = e.msg; });
  EXPECT_NE(told.find("does not match its DiffID"), std::string::npos);

  base_->FeedAll();
  auto whole = base_->layer->Current();
  ASSERT_TRUE(whole && whole->indexed);
  base_->layer->Stored(whole->blob);
  base_->layer->Release(Error{Code::kNetwork, EIO, "an image's pull failed"});
  auto state = base_->layer->Current();
  ASSERT_TRUE(state) << state.error().msg;
  EXPECT_FALSE(state->failed);
  EXPECT_EQ(state->blob, whole->blob);
}

}  // namespace streaming_test
}  // namespace imagefs
