// A disk that fills up under a running node (docs/RELIABILITY.md, resource faults):
// the node's data directory is on a 2 MiB tmpfs. Publishing gets a clear error once
// the disk is full, every message already acknowledged stays readable, in order and
// unchanged (also after a restart), and publishing resumes, without a gap in the
// seqs, as soon as the disk has space again. The map-size limit (--max-store-mb) is
// Durability.FullStoreRefusesWritesClearlyAndKeepsWhatItHas in delivery_test.cpp.
//
// Mounting needs CAP_SYS_ADMIN (root in a container that allows it); elsewhere the
// test is skipped and says so.
#include <gtest/gtest.h>

#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include "client_helpers.hpp"
#include "node_process.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using switchboard::testing::options_for;
using switchboard::testing::publish_until_refused;

namespace {

/// A tmpfs of `size` mounted on `dir` for the object's life.
class SmallDisk {
 public:
  SmallDisk(const std::filesystem::path& dir, const std::string& size) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0)
      mounted_ = true;
    else
      why_ = std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  bool mounted() const noexcept { return mounted_; }
  const std::string& why() const noexcept { return why_; }
  /// Gives the disk more room, under the running node.
  bool grow(const std::string& size) {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
  }

 private:
  std::filesystem::path dir_;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace

TEST(DiskFull, PublishingFailsClearlyKeepsWhatWasStoredAndResumesWhenSpaceReturns) {
  TempDir root;
  SmallDisk disk(root.path() / "disk", "2m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a 2 MiB tmpfs here (" << disk.why() << "); needs CAP_SYS_ADMIN";
  const auto data = root.path() / "disk" / "store";
  const std::string body(60 * 1024, 'd');
  std::vector<std::uint64_t> acked;
  {
    NodeProcess node(data, {"--durability", "nosync"});
    client::Client c(options_for(node));
    ASSERT_TRUE(c.create_room("full", "ann"));
    const Error refused = publish_until_refused(c, "full", "ann", body, 200, acked);
    ASSERT_FALSE(acked.empty());
    ASSERT_LT(acked.size(), 200u) << "the disk never filled";
    // LMDB reports a full disk as a failed write (ENOSPC or EIO, not MDB_MAP_FULL):
    // the client gets unavailable ("retry later"), naming the write that failed.
    EXPECT_TRUE(refused.code == errc::unavailable || refused.code == errc::storage_full) << errc_name(refused.code);
    EXPECT_NE(refused.message.find("not stored"), std::string::npos) << refused.message;

    // Still serving reads, with everything acknowledged.
    auto last = c.last_seq("full");
    ASSERT_TRUE(last) << last.error().message;
    EXPECT_EQ(*last, acked.back());

    // Space returns: the next publish is stored, right after the last acknowledged.
    ASSERT_TRUE(disk.grow("32m"));
    auto ack = c.publish("full", "ann", "space is back");
    ASSERT_TRUE(ack) << ack.error().message;
    EXPECT_EQ(ack->seq, acked.back() + 1);
    acked.push_back(ack->seq);
    EXPECT_EQ(node.stop(), 0);
  }
  // Nothing stored was damaged: a fresh node on the same files reads it all back.
  NodeProcess node(data, {"--durability", "nosync"});
  client::Client c(options_for(node));
  auto stored = switchboard::testing::full_history(c, "full");
  ASSERT_EQ(stored.size(), acked.size());
  for (std::size_t i = 0; i + 1 < stored.size(); ++i) {
    EXPECT_EQ(stored[i].seq, i + 1);
    EXPECT_EQ(stored[i].body, body + std::to_string(i));
  }
  EXPECT_EQ(stored.back().body, "space is back");
  EXPECT_EQ(node.stop(), 0);
}

TEST(DiskFull, ABackupIntoAFullDiskFailsClearlyLeavesNothingHalfWrittenAndWorksOnceThereIsRoom) {
  TempDir root, data;
  SmallDisk disk(root.path() / "backups", "2m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a 2 MiB tmpfs here (" << disk.why() << "); needs CAP_SYS_ADMIN";
  NodeProcess node(data.path(), {"--durability", "nosync", "--bridge", "off", "--metrics", "off"});
  client::Client c(options_for(node));
  ASSERT_TRUE(c.create_room("big", "ann"));
  bool all_acked = true;
  for (int i = 0; i < 2000; ++i)  // 4 MB of bodies: more than the disk holds
    c.publish_async("big", "ann", std::string(2000, 'b'), [&](const auto& ack) { all_acked = all_acked && bool(ack); });
  ASSERT_TRUE(c.wait_all());
  ASSERT_TRUE(all_acked);

  const auto out = root.path() / "backups" / "today";
  auto full = c.backup(out);
  ASSERT_FALSE(full) << "the disk never filled";
  EXPECT_EQ(full.error().code, errc::unavailable);
  EXPECT_NE(full.error().message.find("No space left"), std::string::npos) << full.error().message;
  EXPECT_FALSE(std::filesystem::exists(out / "data.mdb"));
  EXPECT_FALSE(std::filesystem::exists(out / "data.mdb.partial")) << "nothing half written is left";

  // The node went on, and a backup works once the disk has room.
  auto ack = c.publish("big", "ann", "after the failed backup");
  ASSERT_TRUE(ack) << ack.error().message;
  ASSERT_TRUE(disk.grow("64m"));
  auto made = c.backup(out);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(*made, std::filesystem::file_size(out / "data.mdb"));
}
