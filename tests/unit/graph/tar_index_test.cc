// The layer index against libarchive's own listing of tars with every entry type, and
// file data read through the index against the bytes on disk.
#include "graph/tar_index.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <map>

#include "graph/base/fs_util.h"
#include "test_util.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

using testing::ScratchDir;
using testing::Shell;

// The test's own listing: one line of fields per entry, as libarchive reads the tar.
struct Listed {
  std::string path, link;
  bool hardlink;
  uint32_t mode;
  int64_t uid, gid, mtime, mtime_nsec, size;
  uint32_t rmajor, rminor;
  std::map<std::string, std::string> xattrs;
};

std::vector<Listed> ListWithLibarchive(const fs::path& tar) {
  std::vector<Listed> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_filename(a, tar.c_str(), 65536), ARCHIVE_OK);
  archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    Listed l;
    l.path = CleanTarPath(archive_entry_pathname(e));
    l.hardlink = archive_entry_hardlink(e) != nullptr;
    l.link = l.hardlink ? CleanTarPath(archive_entry_hardlink(e))
                        : (archive_entry_symlink(e) ? archive_entry_symlink(e) : "");
    l.mode = archive_entry_mode(e);
    l.uid = archive_entry_uid(e);
    l.gid = archive_entry_gid(e);
    l.mtime = archive_entry_mtime(e);
    l.mtime_nsec = archive_entry_mtime_nsec(e);
    l.size = archive_entry_size(e);
    l.rmajor = archive_entry_rdevmajor(e);
    l.rminor = archive_entry_rdevminor(e);
    archive_entry_xattr_reset(e);
    const char* n;
    const void* v;
    size_t s;
    while (archive_entry_xattr_next(e, &n, &v, &s) == ARCHIVE_OK) {
      l.xattrs[n] = std::string(static_cast<const char*>(v), s);
    }
    out.push_back(std::move(l));
  }
  archive_read_free(a);
  return out;
}

class TarIndexTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    src_ = dir_ / "src";
    // Every entry type tar and umoci produce, with the awkward fields set.
    std::string script = "set -e; mkdir -p " + src_.string() + "; cd " + src_.string() + R"SH(
      printf 'hello world\n' > file
      chmod 4755 file
      setfattr -n user.comment -v 'a value' file
      setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= file
      ln file hardlink
      ln -s file symlink
      ln -s /etc/../absolute/target abslink
      mkdir -p dir/sub && chmod 1777 dir
      printf 'x' > dir/sub/deep
      mkfifo fifo
      mknod chardev c 1 3
      mknod blockdev b 7 0
      printf 'secret' > mode000 && chmod 000 mode000
      printf 'big ids' > bigid && chown 4294967294:4294967294 bigid
      touch -h -d '2020-01-02 03:04:05.123456789' bigid
      long=$(printf 'n%.0s' $(seq 1 200))
      mkdir -p "$(printf 'd%.0s' $(seq 1 120))" && printf 'long' > "$(printf 'd%.0s' $(seq 1 120))/$long"
      printf 'bytes' > $'\xff\xfe-not-utf8'
      truncate -s 5M sparse && printf 'MIDDLE' | dd of=sparse bs=1 seek=2000000 conv=notrunc status=none
      printf 'TAIL' >> sparse
      : > empty
    )SH";
    ASSERT_EQ(Shell(script).status, 0);
    tar_ = dir_ / "layer.tar";
    std::string format = GetParam();
    // GNU tar stores xattrs only in PAX headers; the gnu variant carries none.
    std::string xattrs = format == "pax" ? "--xattrs --xattrs-include='*' " : "";
    ASSERT_EQ(Shell("tar " + xattrs + "--numeric-owner -S --format=" + format + " -cf " +
                    tar_.string() + " -C " + src_.string() + " .")
                  .status,
              0);
  }

  ScratchDir dir_;
  fs::path src_, tar_;
};

TEST_P(TarIndexTest, MatchesLibarchiveListingAndDiskContent) {
  auto fd = OpenFile(tar_, O_RDONLY);
  ASSERT_TRUE(fd);
  struct stat st;
  ASSERT_EQ(fstat(fd->get(), &st), 0);
  void* map = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd->get(), 0);
  ASSERT_NE(map, MAP_FAILED);
  auto summary = WriteTarIndex(static_cast<const char*>(map), st.st_size, dir_ / "index");
  munmap(map, st.st_size);
  ASSERT_TRUE(summary) << summary.error().msg;

  auto index = TarIndex::Open(dir_ / "index");
  ASSERT_TRUE(index) << index.error().msg;
  auto listed = ListWithLibarchive(tar_);
  ASSERT_EQ((*index)->entries().size(), listed.size());
  EXPECT_EQ(summary->entries, listed.size());
  EXPECT_EQ((*index)->tar_size(), static_cast<uint64_t>(st.st_size));

  std::set<std::string> seen_kinds;
  for (size_t i = 0; i < listed.size(); ++i) {
    const IndexEntry& e = (*index)->entries()[i];
    const Listed& l = listed[i];
    std::string path((*index)->Path(e));
    SCOPED_TRACE(path);
    EXPECT_EQ(path, l.path);
    EXPECT_EQ(std::string((*index)->Link(e)), l.link);
    EXPECT_EQ(e.kind == EntryKind::kHardlink, l.hardlink);
    if (!l.hardlink) {
      EXPECT_EQ(e.mode, l.mode);
    }
    EXPECT_EQ(e.mode & 07777, l.mode & 07777);
    EXPECT_EQ(e.uid, l.uid);
    EXPECT_EQ(e.gid, l.gid);
    EXPECT_EQ(e.mtime_sec, l.mtime);
    EXPECT_EQ(e.mtime_nsec, l.mtime_nsec);
    EXPECT_EQ(static_cast<int64_t>(e.size), l.size);
    EXPECT_EQ(e.rdev_major, l.rmajor);
    EXPECT_EQ(e.rdev_minor, l.rminor);
    std::map<std::string, std::string> xattrs;
    for (const IndexXattr& x : (*index)->Xattrs(e)) {
      xattrs[std::string((*index)->Str(x.name_off, x.name_len))] =
          std::string((*index)->Str(x.value_off, x.value_len));
    }
    EXPECT_EQ(xattrs, l.xattrs);
    seen_kinds.insert(std::to_string(static_cast<int>(e.kind)));
    if (path == "file" && std::string(GetParam()) == "pax") {
      EXPECT_EQ(xattrs["user.comment"], "a value");
      EXPECT_EQ(xattrs.count("security.capability"), 1u);
    }

    if (e.kind == EntryKind::kFile) {
      std::string want = testing::ReadAll(src_ / path);
      std::string got(e.size, '\0');
      auto n = ReadEntryData(fd->get(), **index, e, 0, got.size(), got.data());
      ASSERT_TRUE(n) << n.error().msg;
      EXPECT_EQ(*n, want.size());
      EXPECT_TRUE(got == want) << "content differs";
      // A read straddling the middle of the file, as a FUSE read would.
      if (e.size > 10) {
        std::string part(7, '\0');
        ASSERT_TRUE(ReadEntryData(fd->get(), **index, e, e.size / 2 - 3, 7, part.data()));
        EXPECT_EQ(part, want.substr(e.size / 2 - 3, 7));
      }
    }
  }
  EXPECT_EQ(seen_kinds.size(), 7u)
      << "fixture should hold file, dir, symlink, hardlink, chr, blk, fifo";

  // The sparse file is stored as runs and reads back holes as zeros.
  bool found_sparse = false;
  for (const IndexEntry& e : (*index)->entries()) {
    if ((*index)->Path(e) == "sparse") {
      found_sparse = true;
      EXPECT_EQ(e.data_offset, kUseExtents);
      EXPECT_GE(e.extent_count, 1u);
      EXPECT_EQ(e.size, 5u * 1024 * 1024 + 4);
    }
  }
  EXPECT_TRUE(found_sparse);
}

INSTANTIATE_TEST_SUITE_P(Formats, TarIndexTest, ::testing::Values("pax", "gnu"));

TEST(TarIndex, RejectsTruncatedTar) {
  ScratchDir dir;
  ASSERT_EQ(Shell("cd " + dir.path().string() +
                  " && head -c 3000000 /dev/urandom > big && tar -cf t.tar big && "
                  "head -c 1000000 t.tar > cut.tar")
                .status,
            0);
  std::string cut = testing::ReadAll(dir / "cut.tar");
  auto r = WriteTarIndex(cut.data(), cut.size(), dir / "index");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kCorrupt);
  EXPECT_NE(r.error().msg.find("big"), std::string::npos) << r.error().msg;
}

TEST(TarIndex, RejectsGarbageAndAcceptsEmpty) {
  ScratchDir dir;
  std::string garbage(4096, 'z');
  EXPECT_FALSE(WriteTarIndex(garbage.data(), garbage.size(), dir / "index"));
  auto empty = WriteTarIndex(nullptr, 0, dir / "index");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->entries, 0u);
  std::string zeros(10240, '\0');  // an end-of-archive marker only: an empty layer
  auto blank = WriteTarIndex(zeros.data(), zeros.size(), dir / "index2");
  ASSERT_TRUE(blank) << blank.error().msg;
  EXPECT_EQ(blank->entries, 0u);
}

TEST(TarIndex, OpenRejectsCorruptIndex) {
  ScratchDir dir;
  testing::WriteAll(dir / "bad", std::string(64, 'x'));
  auto r = TarIndex::Open(dir / "bad");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kCorrupt);
}

TEST(CleanTarPath, ClampsAndStrips) {
  EXPECT_EQ(CleanTarPath("./a/b/"), "a/b");
  EXPECT_EQ(CleanTarPath("/etc//passwd"), "etc/passwd");
  EXPECT_EQ(CleanTarPath("../../x"), "x");
  EXPECT_EQ(CleanTarPath("a/../../b"), "b");
  EXPECT_EQ(CleanTarPath("./"), "");
  EXPECT_EQ(CleanTarPath("."), "");
}

}  // namespace
}  // namespace imagefs

namespace imagefs {
namespace {

// A 9 GiB (sparse) member: its size only fits a base-256 header field.
TEST(TarIndex, SizesOver8GiB) {
  testing::ScratchDir dir;
  ASSERT_EQ(testing::Shell("cd " + dir.path().string() +
                           " && mkdir s && truncate -s 9G s/huge && printf 'END' >> s/huge"
                           " && tar --format=gnu -S -cf t.tar -C s huge")
                .status,
            0);
  std::string tar = testing::ReadAll(dir / "t.tar");
  auto summary = WriteTarIndex(tar.data(), tar.size(), dir / "index");
  ASSERT_TRUE(summary) << summary.error().msg;
  auto index = TarIndex::Open(dir / "index");
  ASSERT_TRUE(index);
  const IndexEntry& e = (*index)->entries()[0];
  EXPECT_EQ(e.size, (uint64_t{9} << 30) + 3);
  auto fd = OpenFile(dir / "t.tar", O_RDONLY);
  ASSERT_TRUE(fd);
  char buf[8] = {};
  auto n = ReadEntryData(fd->get(), **index, e, e.size - 5, 8, buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(std::string(buf, 5), std::string("\0\0END", 5));
}

}  // namespace
}  // namespace imagefs
