// Hot backup (docs/PROTOCOL.md 4.12, README "Backup and restore"): a copy of a running
// node's store made through the node while publishers go on, opened by a node of its
// own; and the refusals an operator meets.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::run_command;
using switchboard::testing::TempDir;

namespace {

const std::vector<std::string> kNode = {"--durability", "sync", "--bridge", "off", "--metrics", "off"};

/// Every message of `room`, oldest first, paged forward.
std::vector<transport::RoomMessage> whole_history(client::Client& c, const std::string& room) {
  std::vector<transport::RoomMessage> all;
  for (;;) {
    auto page = c.history(room, {1000, std::nullopt, all.empty() ? 0 : all.back().seq});
    if (!page) throw std::runtime_error("history: " + page.error().message);
    all.insert(all.end(), page->messages.begin(), page->messages.end());
    if (!page->more) return all;
  }
}

}  // namespace

TEST(Backup, AHotBackupServesEverythingAcknowledgedBeforeItBeganWhilePublishersGoOn) {
  TempDir data, out;
  NodeProcess node(data.path(), kNode);
  client::Client admin(switchboard::testing::options_for(node));
  ASSERT_TRUE(admin.create_room("archive", "ann"));
  ASSERT_TRUE(admin.create_room("busy", "bob"));
  ASSERT_TRUE(admin.create_room("secret", "ann", true));
  bool all_acked = true;
  for (int i = 0; i < 4000; ++i)  // 8 MB
    admin.publish_async("archive", "ann", std::string(2000, static_cast<char>('a' + i % 26)),
                        [&](const auto& ack) { all_acked = all_acked && static_cast<bool>(ack); });
  ASSERT_TRUE(admin.wait_all());
  ASSERT_TRUE(all_acked);
  ASSERT_TRUE(admin.publish("secret", "ann", "the plan"));

  // A publisher goes on in "busy" all through the backup; every publish must be acked.
  std::atomic<std::uint64_t> acked{0};
  std::atomic<bool> stop{false}, failed{false};
  std::thread publisher([&] {
    client::Client bob(switchboard::testing::options_for(node));
    while (!stop.load()) {
      auto ack = bob.publish("busy", "bob", "tick " + std::to_string(acked.load() + 1));
      if (!ack) {
        failed = true;
        return;
      }
      acked = ack->seq;
    }
  });
  while (acked.load() < 20) std::this_thread::yield();
  const std::uint64_t acked_before = acked.load();
  std::uint64_t progress_calls = 0, last_received = 0, estimate = 0;
  auto made = admin.backup(out.path() / "copy", [&](std::uint64_t received, std::uint64_t total) {
    ++progress_calls;
    EXPECT_GT(received, last_received);
    last_received = received;
    estimate = total;
  });
  const std::uint64_t acked_during = acked.load() - acked_before;
  stop = true;
  publisher.join();
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_FALSE(failed.load()) << "a publish failed while the backup ran";
  EXPECT_EQ(*made, std::filesystem::file_size(out.path() / "copy" / "data.mdb"));
  EXPECT_FALSE(std::filesystem::exists(out.path() / "copy" / "data.mdb.partial"));
  EXPECT_GE(progress_calls, 8u) << "1 MiB chunks of an 8 MB store";
  EXPECT_EQ(last_received, *made);
  EXPECT_GE(estimate, *made) << "the estimate is at least the copy's size";
  std::printf("backup: %llu bytes; %llu publishes acked while it ran\n", static_cast<unsigned long long>(*made),
              static_cast<unsigned long long>(acked_during));

  auto original_archive = whole_history(admin, "archive");
  auto original_busy = whole_history(admin, "busy");
  node.stop();

  NodeProcess restored((out.path() / "copy").string(), kNode);
  client::Client reader(switchboard::testing::options_for(restored));
  auto archive = whole_history(reader, "archive");
  EXPECT_EQ(archive.size(), 4000u);
  EXPECT_TRUE(archive == original_archive) << "the archive as it was";
  auto busy = whole_history(reader, "busy");
  ASSERT_GE(busy.size(), acked_before) << "everything acknowledged before the backup began";
  for (std::size_t i = 0; i < busy.size(); ++i) {
    ASSERT_EQ(busy[i].seq, i + 1) << "gapless";
    ASSERT_EQ(busy[i].body, original_busy[i].body);
  }
  auto members = reader.members("secret");
  ASSERT_TRUE(members) << members.error().message;
  EXPECT_EQ(*members, std::vector<std::string>{"ann"}) << "rooms keep their members and privacy";
  // The restored node takes new publishes where the copy left off.
  auto next = reader.publish("busy", "bob", "after the restore");
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->seq, busy.size() + 1);
}

TEST(Backup, RefusedIntoANonEmptyDirectoryAndToAUserAndTheCommandSaysSo) {
  TempDir data, out;
  NodeProcess node(data.path(), kNode);
  client::Client admin(switchboard::testing::options_for(node));
  ASSERT_TRUE(admin.create_room("lobby", "ann"));
  ASSERT_TRUE(admin.publish("lobby", "ann", "hello"));

  std::filesystem::create_directories(out.path() / "taken");
  std::ofstream(out.path() / "taken" / "notes.txt") << "mine";
  auto taken = admin.backup(out.path() / "taken");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, errc::bad_field);
  EXPECT_NE(taken.error().message.find("not empty"), std::string::npos) << taken.error().message;
  EXPECT_FALSE(std::filesystem::exists(out.path() / "taken" / "data.mdb"));

  client::ClientOptions as_ann = switchboard::testing::options_for(node);
  as_ann.as = "ann";
  client::Client ann(as_ann);
  auto refused = ann.backup(out.path() / "ann");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::forbidden) << refused.error().message;
  EXPECT_FALSE(std::filesystem::exists(out.path() / "ann" / "data.mdb"));

  // The command: a backup into a new directory, then a refusal into the same one.
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  const std::string dir = (out.path() / "cli").string();
  auto first = run_command({"backup", "--keys", keys, "--connect", at, "--out", dir});
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_NE(first.out.find("bytes in " + dir + "/data.mdb"), std::string::npos) << first.out;
  auto again = run_command({"backup", "--keys", keys, "--connect", at, "--out", dir});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("is not empty"), std::string::npos) << again.err;
  node.stop();
  NodeProcess restored(dir, kNode);
  client::Client reader(switchboard::testing::options_for(restored));
  auto page = reader.history("lobby");
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->messages.size(), 1u);
  EXPECT_EQ(page->messages[0].body, "hello");
}
