// Retention, trimming and import (docs/PROTOCOL.md 4.13 and 4.14, README "Retention"
// and "Backup and restore"): a room keeps what its owner and the node say, history
// and subscriptions say where it starts, a legal hold stops it, and an export goes
// into another room as it was.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::options_for;
using switchboard::testing::receive;
using switchboard::testing::run_command;
using switchboard::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

const std::vector<std::string> kNode = {"--durability", "sync", "--bridge", "off", "--metrics", "off"};

std::vector<std::uint64_t> seqs(const std::vector<transport::RoomMessage>& messages) {
  std::vector<std::uint64_t> out;
  for (const auto& m : messages) out.push_back(m.seq);
  return out;
}

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t s = from; s <= to; ++s) out.push_back(s);
  return out;
}

/// The room's first seq as set_retention reports it, once it is `want` (retention
/// trims in the background, once a second), or whatever it is after `patience`.
std::uint64_t first_seq_once(client::Client& c, const std::string& room, std::uint64_t want,
                             std::chrono::milliseconds patience = std::chrono::seconds(20)) {
  const auto deadline = Clock::now() + patience;
  std::uint64_t first = 0;
  for (;;) {
    auto r = c.set_retention({room});
    if (!r) throw std::runtime_error("set_retention: " + r.error().message);
    first = r->first_seq;
    if (first == want || Clock::now() >= deadline) return first;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling what the node reports
  }
}

std::uint64_t value_of(const Result<std::uint64_t>& r) {
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : 0;
}

void publish_n(client::Client& c, const std::string& room, const std::string& user, int n, const std::string& body) {
  bool ok = true;
  for (int i = 0; i < n; ++i)
    c.publish_async(room, user, body + " " + std::to_string(i), [&](const auto& ack) { ok = ok && static_cast<bool>(ack); });
  ASSERT_TRUE(c.wait_all());
  ASSERT_TRUE(ok);
}

}  // namespace

TEST(Retention, ARoomKeepsItsNewestMessagesAndHistoryAndSubscriptionsSayWhereItStarts) {
  TempDir data;
  auto node = std::make_unique<NodeProcess>(data.path(), kNode);
  client::Client admin(options_for(*node));
  ASSERT_TRUE(admin.create_room("news", "ann"));
  ASSERT_TRUE(admin.join("news", "bob"));
  ASSERT_TRUE(admin.publish(transport::Publish{"news", "ann", "m-1", "hello @bob", {"bob"}}));  // bob never reads it
  publish_n(admin, "news", "ann", 199, "item");

  client::ClientOptions as_ann = options_for(*node);
  as_ann.as = "ann";
  client::Client ann(as_ann);
  auto set = ann.set_retention({"news", std::nullopt, 50});
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->max_messages, 50u);
  EXPECT_EQ(set->applied_max_messages, 50u);
  EXPECT_EQ(set->max_age_s, 0u);
  EXPECT_EQ(first_seq_once(admin, "news", 151), 151u);

  // An `after` below the first seq: the messages from it on, and the page says so.
  auto page = admin.history("news", {100, std::nullopt, 0});
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(seqs(page->messages), range(151, 200));
  EXPECT_EQ(page->first_seq, 151u) << "truncated";
  // The newest page reaches the start: truncated too. An `after` past it: not.
  auto newest = admin.history("news", {100, std::nullopt, std::nullopt});
  ASSERT_TRUE(newest);
  EXPECT_EQ(newest->messages.size(), 50u);
  EXPECT_FALSE(newest->more);
  EXPECT_EQ(newest->first_seq, 151u);
  auto later = admin.history("news", {10, std::nullopt, 160});
  ASSERT_TRUE(later);
  EXPECT_EQ(later->first_seq, 0u);
  EXPECT_EQ(later->messages.front().seq, 161u);

  // A subscription from the start goes on from the first seq, and says it skipped.
  client::Client reader(options_for(*node));
  ASSERT_TRUE(reader.subscribe("news", 0));
  auto got = receive(reader, 50);
  EXPECT_EQ(seqs(got), range(151, 200));
  EXPECT_EQ(reader.take_truncations(), (std::vector<client::Client::Truncation>{{"news", 151}}));
  EXPECT_TRUE(reader.take_truncations().empty()) << "said once";

  // bob never read anything: what he has unread is what the room still holds, and the
  // mention of a removed message is gone.
  auto bob = admin.rooms_summary("bob");
  ASSERT_TRUE(bob);
  ASSERT_EQ(bob->summaries.size(), 1u);
  EXPECT_EQ(bob->summaries[0].unread, 50u);
  EXPECT_EQ(bob->summaries[0].mentions, 0u);

  // A restart keeps where the room starts.
  node->stop();
  node = std::make_unique<NodeProcess>(data.path(), kNode);
  client::Client again(options_for(*node));
  auto after_restart = again.history("news", {100, std::nullopt, 0});
  ASSERT_TRUE(after_restart) << after_restart.error().message;
  EXPECT_EQ(seqs(after_restart->messages), range(151, 200));
  EXPECT_EQ(after_restart->first_seq, 151u);
  auto kept = again.set_retention({"news"});
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->max_messages, 50u);
  // New messages push the oldest out; seqs go on.
  auto next = again.publish("news", "ann", "one more");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->seq, 201u);
  EXPECT_EQ(first_seq_once(again, "news", 152), 152u);
}

TEST(Retention, MessagesOlderThanTheRoomsMaxAgeAreRemoved) {
  TempDir data;
  NodeProcess node(data.path(), kNode);
  client::Client admin(options_for(node));
  ASSERT_TRUE(admin.create_room("brief", "ann"));
  publish_n(admin, "brief", "ann", 30, "old");
  auto set = admin.set_retention({"brief", 1});
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->applied_max_age_s, 1u);
  // Within a second or two of becoming a second old, all thirty are gone.
  EXPECT_EQ(first_seq_once(admin, "brief", 31), 31u);
  auto page = admin.history("brief", {100, std::nullopt, 0});
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->messages.empty());
  EXPECT_EQ(page->first_seq, 31u);
  auto last = admin.last_seq("brief");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 30u) << "seqs are never given out again";
  auto fresh = admin.publish("brief", "ann", "new");
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->seq, 31u);
  auto now_page = admin.history("brief", {100, std::nullopt, 30});
  ASSERT_TRUE(now_page);
  ASSERT_EQ(now_page->messages.size(), 1u);
  EXPECT_EQ(now_page->messages[0].body, "new");
}

TEST(Retention, CapsRightsAndALegalHoldAreEnforced) {
  TempDir data;
  std::vector<std::string> args = kNode;
  for (const char* limit : {"retention_max_age_s=3600", "retention_max_messages=1000",
                            "retention_default_messages=500"}) {
    args.push_back("--limit");
    args.push_back(limit);
  }
  NodeProcess node(data.path(), args);
  client::Client admin(options_for(node));
  ASSERT_TRUE(admin.create_room("vault", "ann"));
  ASSERT_TRUE(admin.join("vault", "bob"));
  client::ClientOptions as_ann = options_for(node), as_bob = options_for(node);
  as_ann.as = "ann";
  as_bob.as = "bob";
  client::Client ann(as_ann), bob(as_bob);

  // The node's default and caps apply to a room without its own setting.
  auto plain = bob.set_retention({"vault"});
  ASSERT_TRUE(plain) << "any member may read it: " << plain.error().message;
  EXPECT_EQ(plain->applied_max_messages, 500u);
  EXPECT_EQ(plain->applied_max_age_s, 3600u) << "the cap bounds a room with no age of its own";

  auto over = ann.set_retention({"vault", 7200});
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, errc::bad_field);
  EXPECT_NE(over.error().message.find("cap of 3600"), std::string::npos) << over.error().message;
  auto too_many = ann.set_retention({"vault", std::nullopt, 5000});
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().code, errc::bad_field);
  auto absurd = ann.set_retention({"vault", 1ull << 40});
  ASSERT_FALSE(absurd);
  EXPECT_EQ(absurd.error().code, errc::bad_field);
  EXPECT_NE(absurd.error().message.find("100 years"), std::string::npos) << absurd.error().message;
  auto not_owner = bob.set_retention({"vault", std::nullopt, 10});
  ASSERT_FALSE(not_owner);
  EXPECT_EQ(not_owner.error().code, errc::forbidden);
  auto owner_hold = ann.set_retention({"vault", std::nullopt, std::nullopt, true});
  ASSERT_FALSE(owner_hold);
  EXPECT_EQ(owner_hold.error().code, errc::forbidden);
  EXPECT_NE(owner_hold.error().message.find("operator"), std::string::npos) << owner_hold.error().message;

  // An operator's hold: nothing is removed, by retention or by hand.
  auto hold = admin.set_retention({"vault", std::nullopt, std::nullopt, true});
  ASSERT_TRUE(hold) << hold.error().message;
  EXPECT_TRUE(hold->legal_hold);
  auto ten = ann.set_retention({"vault", std::nullopt, 10});
  ASSERT_TRUE(ten) << "an owner still sets the bounds: " << ten.error().message;
  publish_n(admin, "vault", "ann", 30, "evidence");
  auto by_hand = ann.trim_history("vault", 20);
  ASSERT_FALSE(by_hand);
  EXPECT_EQ(by_hand.error().code, errc::forbidden);
  EXPECT_NE(by_hand.error().message.find("legal hold"), std::string::npos) << by_hand.error().message;
  // Two retention rounds (one a second) pass with the room over its bound: nothing goes.
  EXPECT_EQ(first_seq_once(admin, "vault", 0, std::chrono::milliseconds(2500)), 1u);  // never 0: the whole window
  auto all = admin.history("vault", {100, std::nullopt, 0});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->messages.size(), 30u);
  EXPECT_EQ(all->first_seq, 0u);

  // Lifted: the room is brought within its bound.
  auto lifted = admin.set_retention({"vault", std::nullopt, std::nullopt, false});
  ASSERT_TRUE(lifted);
  EXPECT_FALSE(lifted->legal_hold);
  EXPECT_EQ(first_seq_once(admin, "vault", 21), 21u);

  // By hand, an owner removes more (only what is acknowledged, never past the end).
  auto trimmed = ann.trim_history("vault", 25);
  ASSERT_TRUE(trimmed) << trimmed.error().message;
  EXPECT_EQ(*trimmed, 25u);
  auto past_end = ann.trim_history("vault", 1000);
  ASSERT_TRUE(past_end);
  EXPECT_EQ(*past_end, 31u) << "everything, and no further";
  auto by_bob = bob.trim_history("vault", 31);
  ASSERT_FALSE(by_bob);
  EXPECT_EQ(by_bob.error().code, errc::forbidden);
}

TEST(Import, AnExportGoesIntoAnotherRoomAsItWasAndAnImportThatStoppedGoesOn) {
  TempDir data, files;
  NodeProcess node(data.path(), kNode);
  client::Client admin(options_for(node));
  ASSERT_TRUE(admin.create_room("origin", "ann"));
  ASSERT_TRUE(admin.join("origin", "bob"));
  publish_n(admin, "origin", "ann", 40, "first");
  ASSERT_TRUE(admin.publish(transport::Publish{"origin", "bob", "hi-ann", "hi @ann", {"ann"}}));
  publish_n(admin, "origin", "bob", 2459, "then");
  ASSERT_EQ(value_of(admin.trim_history("origin", 11)), 11u);  // an export of a trimmed room starts at its first seq

  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  const auto exported = files.path() / "origin.jsonl";
  auto out = run_command({"export", "--keys", keys, "--connect", at, "--room", "origin"});
  ASSERT_EQ(out.status, 0) << out.err;
  std::ofstream(exported) << out.out;

  // Into a room that holds nothing: the same seqs, senders, times, cmids, mentions.
  ASSERT_TRUE(admin.create_room("copy", "carol"));
  auto first = run_command({"import", "--keys", keys, "--connect", at, "--room", "copy", "--batch", "300"},
                           std::chrono::seconds(60), exported);
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_NE(first.err.find("2490 messages into 'copy'"), std::string::npos) << first.err;
  auto original = admin.history("origin", {1000, std::nullopt, 0});
  auto copied = admin.history("copy", {1000, std::nullopt, 0});
  ASSERT_TRUE(original && copied);
  ASSERT_EQ(copied->messages.size(), original->messages.size());
  EXPECT_EQ(copied->first_seq, 11u) << "the copy starts where the export did, and says so";
  for (std::size_t i = 0; i < original->messages.size(); ++i) {
    auto a = original->messages[i], b = copied->messages[i];
    EXPECT_EQ(b.room, "copy");
    b.room = a.room;
    EXPECT_EQ(a, b) << "seq " << a.seq;
  }
  auto mention = std::find_if(copied->messages.begin(), copied->messages.end(),
                              [](const auto& m) { return m.client_msg_id == "hi-ann"; });
  ASSERT_NE(mention, copied->messages.end());
  EXPECT_EQ(mention->seq, 41u);
  EXPECT_EQ(mention->mentions, std::vector<std::string>{"ann"});
  auto last = admin.last_seq("copy");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 2500u);
  // The same file again: nothing twice.
  auto again = run_command({"import", "--keys", keys, "--connect", at, "--room", "copy"}, std::chrono::seconds(60),
                           exported);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("0 messages into 'copy', 2490 there already"), std::string::npos) << again.err;
  EXPECT_EQ(value_of(admin.last_seq("copy")), 2500u);

  // A bad line: what came before it (whole batches) is stored, nothing after; the
  // command names the line and how far the room got; fixed, the import goes on.
  std::vector<std::string> lines;
  {
    std::istringstream in(out.out);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 2490u);
  const auto broken = files.path() / "broken.jsonl";
  {
    std::ofstream f(broken);
    for (std::size_t i = 0; i < lines.size(); ++i) f << (i == 1200 ? std::string("{\"seq\": \"x\"}") : lines[i]) << "\n";
  }
  ASSERT_TRUE(admin.create_room("resumed", "carol"));
  auto stopped = run_command({"import", "--keys", keys, "--connect", at, "--room", "resumed", "--batch", "500"},
                             std::chrono::seconds(60), broken);
  EXPECT_EQ(stopped.status, 1);
  EXPECT_NE(stopped.err.find("line 1201: 'seq' must be a number"), std::string::npos) << stopped.err;
  EXPECT_NE(stopped.err.find("holds messages up to seq 1010"), std::string::npos) << stopped.err;
  EXPECT_EQ(value_of(admin.last_seq("resumed")), 1010u) << "two whole batches of 500, from seq 11";
  auto resumed = run_command({"import", "--keys", keys, "--connect", at, "--room", "resumed"}, std::chrono::seconds(60),
                             exported);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("1490 messages into 'resumed', 1000 there already"), std::string::npos) << resumed.err;
  auto whole = admin.history("resumed", {1000, std::nullopt, 2000});
  ASSERT_TRUE(whole);
  EXPECT_EQ(seqs(whole->messages), range(2001, 2500));

  // Refused: a room with messages of its own, a room that does not exist, a user.
  auto into_origin = run_command({"import", "--keys", keys, "--connect", at, "--room", "copy2"}, std::chrono::seconds(60),
                                 exported);
  EXPECT_EQ(into_origin.status, 1);
  EXPECT_NE(into_origin.err.find("create the room first"), std::string::npos) << into_origin.err;
  ASSERT_TRUE(admin.create_room("busy", "carol"));
  ASSERT_TRUE(admin.publish("busy", "carol", "mine"));
  auto into_busy = run_command({"import", "--keys", keys, "--connect", at, "--room", "busy"}, std::chrono::seconds(60),
                               exported);
  EXPECT_EQ(into_busy.status, 1);
  EXPECT_NE(into_busy.err.find("holds messages up to seq 1"), std::string::npos) << into_busy.err;
  EXPECT_EQ(value_of(admin.last_seq("busy")), 1u);
  client::ClientOptions as_carol = options_for(node);
  as_carol.as = "carol";
  client::Client carol(as_carol);
  ASSERT_TRUE(admin.create_room("hers", "carol"));
  auto by_user = carol.import_batch({"hers", 1, {{"carol", 1, "c-1", "forged"}}});
  ASSERT_FALSE(by_user);
  EXPECT_EQ(by_user.error().code, errc::forbidden);
  // The protocol's own checks: a first seq that is not the room's next.
  auto gap = admin.import_batch({"copy", 2502, {{"dan", 1, "d-1", "late"}}});
  ASSERT_FALSE(gap);
  EXPECT_EQ(gap.error().code, errc::bad_field);
  EXPECT_NE(gap.error().message.find("must go on at seq 2501"), std::string::npos) << gap.error().message;
}

TEST(Retention, AFullStoreIsFreedByRetentionAndAnImportRefusedForLackOfRoomGoesOnOnceThereIsRoom) {
  TempDir data, files;
  NodeProcess node(data.path(), {"--max-store-mb", "2", "--durability", "nosync", "--bridge", "off", "--metrics", "off"});
  client::Client admin(options_for(node));
  ASSERT_TRUE(admin.create_room("full", "ann"));
  ASSERT_TRUE(admin.create_room("copy", "ann"));
  const std::string body(60 * 1024, 'f');
  std::vector<std::uint64_t> acked;
  const Error refused = switchboard::testing::publish_until_refused(admin, "full", "ann", body, 200, acked);
  ASSERT_EQ(refused.code, errc::storage_full) << refused.message;
  ASSERT_GT(acked.size(), 10u);

  // An import into the full store: refused clearly, nothing of it stored.
  const auto file = files.path() / "ten.jsonl";
  {
    std::ofstream f(file);
    for (int i = 1; i <= 10; ++i)
      f << "{\"seq\":" << i << ",\"user\":\"zoe\",\"ts\":" << 1'700'000'000'000LL + i << ",\"body\":\"" << body
        << "\",\"cmid\":\"z-" << i << "\"}\n";
  }
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  const std::vector<std::string> import = {"import", "--keys", keys, "--connect", at, "--room", "copy", "--batch", "2"};
  auto no_room = run_command(import, std::chrono::seconds(60), file);
  EXPECT_EQ(no_room.status, 1);
  EXPECT_NE(no_room.err.find("storage_full"), std::string::npos) << no_room.err;
  EXPECT_NE(no_room.err.find("holds messages up to seq 0"), std::string::npos) << no_room.err;
  EXPECT_EQ(value_of(admin.last_seq("copy")), 0u);

  // Retention frees the space (its removals fit in a full store), and writes go on.
  auto set = admin.set_retention({"full", std::nullopt, 3});
  ASSERT_TRUE(set) << set.error().message;
  const std::uint64_t last = acked.back();
  EXPECT_EQ(first_seq_once(admin, "full", last - 2), last - 2);
  auto again = admin.publish("full", "ann", "room again");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->seq, last + 1);
  auto resumed = run_command(import, std::chrono::seconds(60), file);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  auto copied = admin.history("copy", {100, std::nullopt, 0});
  ASSERT_TRUE(copied);
  EXPECT_EQ(seqs(copied->messages), range(1, 10));
  for (const auto& m : copied->messages) EXPECT_EQ(m.body, body);
}

TEST(Retention, TheCommandsRefuseANegativeAgeAndATrimToNothingBeforeAskingANode) {
  auto negative = run_command({"retention", "--room", "r", "--max-age-s", "-5"});
  EXPECT_NE(negative.status, 0);
  EXPECT_NE((negative.out + negative.err).find("--max-age-s: Value -5 not in range"), std::string::npos)
      << negative.out << negative.err;
  auto zero = run_command({"trim", "--room", "r", "--before", "0"});
  EXPECT_NE(zero.status, 0);
  EXPECT_NE((zero.out + zero.err).find("--before: Value 0 not in range"), std::string::npos) << zero.out << zero.err;
  auto hold = run_command({"retention", "--room", "r", "--legal-hold", "maybe"});
  EXPECT_NE(hold.status, 0);
  EXPECT_NE((hold.out + hold.err).find("--legal-hold"), std::string::npos) << hold.out << hold.err;
}
