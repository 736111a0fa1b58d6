// StoreTest: a store of its own in a scratch directory, with helpers that register layers
// and images (store_test.cc, store_transaction_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/store.h"
#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {

namespace fs = std::filesystem;
using testing::MakeTar;
using testing::ScratchDir;

// Counts what the store reads, to prove work is done once or not at all.
class CountingSource final : public ByteSource {
 public:
  CountingSource(std::string data, std::atomic<uint64_t>* counter)
      : data_(std::move(data)), counter_(counter) {}
  Result<size_t> Read(char* buf, size_t len) override {
    auto n = inner_.Read(buf, len);
    if (n) *counter_ += *n;
    return n;
  }

 private:
  std::string data_;
  MemorySource inner_{data_};
  std::atomic<uint64_t>* counter_;
};

inline std::string Config(const std::vector<Digest>& diff_ids,
                          const std::string& created = "2021-05-06T07:08:09Z") {
  std::string ids;
  for (const auto& d : diff_ids) ids += (ids.empty() ? "\"" : ",\"") + d.str() + "\"";
  // Odd spacing on purpose: the store must keep these bytes as they are.
  return "{\"created\":  \"" + created + "\", \"rootfs\": {\"type\":\"layers\",\"diff_ids\":[" +
         ids + "]}}";
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    auto s = Store::Open(dir_ / "store", {.create = true});
    ASSERT_TRUE(s) << s.error().msg;
    store_ = std::move(*s);
  }
  LayerInfo AddLayer(const std::optional<Digest>& parent, const std::string& tar) {
    MemorySource src(tar);
    auto l = store_->RegisterLayer(parent, src);
    EXPECT_TRUE(l) << l.error().msg;
    return *l;
  }
  // Registers an image over the given layer tars; returns its ID.
  std::string AddImage(const std::vector<std::string>& tars, std::optional<std::string> parent = {},
                       const std::string& created = "2021-05-06T07:08:09Z") {
    std::optional<Digest> top;
    std::vector<Digest> diffs;
    for (const auto& t : tars) {
      LayerInfo l = AddLayer(top, t);
      top = l.chain_id;
      diffs.push_back(l.diff_id);
    }
    std::string config = Config(diffs, created);
    std::string id = Sha256::Of(config).hex();
    auto image = store_->RegisterImage({id, config, top, parent});
    EXPECT_TRUE(image) << image.error().msg;
    return id;
  }
  size_t CountEntries(const std::string& sub) {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_ / "store" / sub)) ++n;
    return n;
  }

  ScratchDir dir_;
  std::unique_ptr<Store> store_;
  const std::string tar_a_ = MakeTar({{"etc/", "", S_IFDIR}, {"etc/a", "alpha"}});
  const std::string tar_b_ = MakeTar({{"etc/b", "beta"}, {"etc/.wh.a", ""}});
  const std::string tar_c_ = MakeTar({{"usr/c", std::string(100000, 'c')}});
};

}  // namespace imagefs
