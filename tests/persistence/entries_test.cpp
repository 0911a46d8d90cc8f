// A message's life in the store: edits, deletes and reactions stored as room entries,
// each changing its target in the same transaction (persistence::StoredMessage), in a
// store in clear and a sealed one, through a restart and a shard copy.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "switchboard/common/message_map.hpp"
#include "switchboard/persistence/history_store.hpp"

namespace {

namespace fs = std::filesystem;
using namespace switchboard;
using namespace switchboard::persistence;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::path(::testing::TempDir()) / "entries_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

HistoryStore open_at(const fs::path& dir, std::optional<StoreKey> key = std::nullopt) {
  StoreOptions options;
  options.dir = dir;
  options.durability = Durability::nosync;
  options.key = std::move(key);
  auto store = HistoryStore::open(options);
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(*store);
}

void append(HistoryStore& store, std::vector<Record> records) {
  auto done = store.append_batch(records);
  if (!done) throw std::runtime_error(done.error().message);
}

StoredMessage message(std::uint64_t seq, const std::string& user, std::string body,
                      std::vector<std::string> mentions = {}) {
  StoredMessage m{"r", seq, user, 1000 * seq, std::move(body), "c" + std::to_string(seq)};
  m.mentions = std::move(mentions);
  return m;
}

StoredMessage entry(std::uint64_t seq, const std::string& user, EntryKind kind, std::uint64_t target,
                    std::string body = {}, std::string key = {}, bool on = true) {
  StoredMessage m{"r", seq, user, 1000 * seq, std::move(body), "c" + std::to_string(seq)};
  m.entry.kind = kind;
  m.entry.target = target;
  m.entry.key = std::move(key);
  m.entry.on = on;
  return m;
}

/// Every entry of room "r" as a page of message maps reads it (as `reader`).
std::vector<MessageMapView> page(const HistoryStore& store, const std::string& reader, std::string& bytes) {
  PageQuery query;
  query.mode = PageQuery::Mode::after;
  query.limit = 1000;
  query.reader = reader;
  auto read = store.page_maps("r", query);
  if (!read) throw std::runtime_error(read.error().message);
  bytes = std::move(read->maps);
  std::vector<MessageMapView> out;
  // Maps one after another: split them by reading each map's extent.
  std::string_view rest = bytes;
  while (!rest.empty()) {
    std::size_t size = 1;
    for (; size <= rest.size(); ++size)
      if (auto m = read_message_map(rest.substr(0, size))) {
        out.push_back(*m);
        break;
      }
    rest.remove_prefix(size);
  }
  return out;
}

/// A message as a store would show it: the body, whether edited/deleted, reactions.
struct Shown {
  std::string body;
  std::uint64_t edited_ts = 0;
  bool deleted = false;
  std::vector<Reaction> reactions;
  std::vector<std::string> mine;
};
Shown shown(const MessageMapView& m) {
  return {std::string(m.body), m.entry.edited_ts, m.entry.deleted, m.entry.reactions, m.entry.mine};
}

/// The room of the tests: ann's two messages (the second mentions bob), bob's one.
std::vector<Record> room() {
  return {CreateRoom{"r", "ann", 1}, AddMember{"r", "bob", Role::member}, message(1, "ann", "first draft"),
          message(2, "ann", "secret plans", {"bob"}), message(3, "bob", "hi")};
}

void lives_of_a_message(std::optional<StoreKey> key) {
  TempDir dir;
  HistoryStore store = open_at(dir.path() / "s", key);
  append(store, room());
  // Edited twice, reacted to by two users with one key and by one with another.
  append(store, {entry(4, "ann", EntryKind::edit, 1, "second draft"), entry(5, "bob", EntryKind::react, 1, {}, "+1"),
                 entry(6, "ann", EntryKind::react, 1, {}, "+1"), entry(7, "ann", EntryKind::react, 1, {}, "eyes")});
  append(store, {entry(8, "ann", EntryKind::edit, 1, "final text")});
  std::string bytes;
  auto maps = page(store, "bob", bytes);
  ASSERT_EQ(maps.size(), 8u);
  Shown first = shown(maps[0]);
  EXPECT_EQ(first.body, "final text") << "the latest edit's body, in the message's place";
  EXPECT_EQ(first.edited_ts, 8000u) << "the time of the latest edit";
  EXPECT_EQ(first.reactions, (std::vector<Reaction>{{"+1", 2}, {"eyes", 1}}));
  EXPECT_EQ(first.mine, (std::vector<std::string>{"+1"})) << "bob reacted with +1 only";
  EXPECT_EQ(maps[3].entry.kind, EntryKind::edit) << "the edit is an entry of its own";
  EXPECT_EQ(maps[3].entry.target, 1u);
  EXPECT_EQ(maps[3].body, "second draft");
  EXPECT_EQ(maps[4].entry.kind, EntryKind::react);
  EXPECT_EQ(maps[4].entry.key, "+1");
  EXPECT_TRUE(maps[4].entry.on);
  auto ann = page(store, "ann", bytes);
  EXPECT_EQ(shown(ann[0]).mine, (std::vector<std::string>{"+1", "eyes"}));
  EXPECT_TRUE(shown(page(store, "", bytes)[0]).mine.empty()) << "no reader: no mine";

  // What a lifecycle entry about to target message 1 finds.
  auto target = store.target("r", 1, "bob", "+1");
  ASSERT_TRUE(target) << target.error().message;
  EXPECT_TRUE(target->found);
  EXPECT_EQ(target->user, "ann");
  EXPECT_EQ(target->ts_ms, 1000u);
  EXPECT_EQ(target->kind, EntryKind::message);
  EXPECT_TRUE(target->reacted);
  EXPECT_FALSE(store.target("r", 1, "bob", "eyes")->reacted);
  EXPECT_EQ(store.target("r", 4, "", "")->kind, EntryKind::edit);
  EXPECT_FALSE(store.target("r", 99, "", "")->found);
  EXPECT_EQ(store.target("nowhere", 1, "", "").error().code, errc::no_such_room);

  // A reaction taken back: its count goes down, and a key at 0 is gone.
  append(store, {entry(9, "ann", EntryKind::react, 1, {}, "eyes", false), entry(10, "bob", EntryKind::react, 1, {}, "+1", false)});
  EXPECT_EQ(shown(page(store, "bob", bytes)[0]).reactions, (std::vector<Reaction>{{"+1", 1}}));
  EXPECT_TRUE(shown(page(store, "bob", bytes)[0]).mine.empty());

  // Deleted: the body, its edits' bodies, its reactions go; its sender and time stay.
  append(store, {entry(11, "ann", EntryKind::remove, 1), entry(12, "ann", EntryKind::remove, 2)});
  maps = page(store, "ann", bytes);
  ASSERT_EQ(maps.size(), 12u);
  Shown gone = shown(maps[0]);
  EXPECT_TRUE(gone.deleted);
  EXPECT_EQ(gone.body, "");
  EXPECT_EQ(gone.edited_ts, 0u);
  EXPECT_TRUE(gone.reactions.empty());
  EXPECT_EQ(maps[0].user, "ann");
  EXPECT_EQ(maps[0].ts_ms, 1000u);
  for (std::size_t edit : {3u, 7u}) {
    EXPECT_EQ(maps[edit].entry.kind, EntryKind::edit);
    EXPECT_TRUE(maps[edit].entry.deleted) << "an edit of a deleted message keeps no body";
    EXPECT_EQ(maps[edit].body, "");
  }
  EXPECT_TRUE(maps[1].mentions.empty()) << "a deleted message mentions no one";
  for (const char* text : {"first draft", "second draft", "final text", "secret plans"})
    EXPECT_EQ(bytes.find(text), std::string::npos) << text << " is in no page";
  EXPECT_TRUE(store.target("r", 1, "ann", "+1")->deleted);
  EXPECT_FALSE(store.target("r", 1, "ann", "+1")->reacted) << "its reactions' rows went with it";
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_TRUE(snapshot->rooms.at("r").mentions.empty()) << "bob's mention in message 2 no longer counts";

  // The store is lenient where chat's rules are strict: an edit of a deleted message is
  // stored without its body; an entry whose target is gone changes nothing.
  append(store, {entry(13, "ann", EntryKind::edit, 1, "back from the dead"), entry(14, "bob", EntryKind::react, 99, {}, "x")});
  maps = page(store, "ann", bytes);
  EXPECT_TRUE(maps[0].entry.deleted);
  EXPECT_EQ(maps[12].body, "");
  EXPECT_TRUE(maps[12].entry.deleted);
  EXPECT_EQ(bytes.find("back from the dead"), std::string::npos);
  EXPECT_EQ(maps[2].body, "hi") << "other messages as they were";

  // All of it as it was after a restart.
  std::string before = bytes;
  { HistoryStore closing = std::move(store); }
  store = open_at(dir.path() / "s", key);
  page(store, "ann", bytes);
  EXPECT_EQ(bytes, before);
}

TEST(Entries, EditsDeletesAndReactionsChangeTheirTargetInAStoreInClear) { lives_of_a_message(std::nullopt); }

TEST(Entries, EditsDeletesAndReactionsChangeTheirTargetInASealedStore) { lives_of_a_message(StoreKey::generate()); }

TEST(Entries, ASealedStoreKeepsNoEditedOrDeletedTextInClear) {
  TempDir dir;
  HistoryStore store = open_at(dir.path() / "s", StoreKey::generate());
  append(store, room());
  append(store, {entry(4, "ann", EntryKind::edit, 3, "never"), entry(5, "bob", EntryKind::edit, 3, "an edit in the open")});
  std::ifstream file(dir.path() / "s" / "data.mdb", std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(data.empty());
  for (const char* text : {"an edit in the open", "secret plans"})
    EXPECT_EQ(data.find(text), std::string::npos) << "bodies, edits' too, are sealed";
}

TEST(Entries, AShardCopyCarriesEachMessagesStateAndItsReactionsRows) {
  TempDir dir;
  HistoryStore primary = open_at(dir.path() / "primary");
  append(primary, room());
  append(primary, {entry(4, "ann", EntryKind::edit, 3, "hi there"), entry(5, "bob", EntryKind::react, 2, {}, "ok"),
                   entry(6, "ann", EntryKind::react, 2, {}, "ok"), entry(7, "ann", EntryKind::remove, 1),
                   LogEntry{"s", 1, 1, "x"}});
  const fs::path copy = dir.path() / "copy";
  fs::create_directories(copy);
  ASSERT_TRUE(primary.copy_to(copy));
  HistoryStore replica = open_at(dir.path() / "replica");
  append(replica, {CreateRoom{"other", "zed", 1}});  // room ids differ between the two stores
  auto installed = replica.install_shard(copy, "s", [](std::string_view room) { return room == "r"; }, 0);
  ASSERT_TRUE(installed) << installed.error().message;
  std::string theirs, ours;
  page(primary, "bob", theirs);
  auto maps = page(replica, "bob", ours);
  EXPECT_EQ(ours, theirs) << "every entry and every message's state as on the primary";
  ASSERT_EQ(maps.size(), 7u);
  EXPECT_EQ(shown(maps[1]).reactions, (std::vector<Reaction>{{"ok", 2}})) << "counted once, not again on install";
  // The reactions' rows came too: a reaction taken back on the replica counts down.
  EXPECT_TRUE(replica.target("r", 2, "bob", "ok")->reacted);
  append(replica, {entry(8, "bob", EntryKind::react, 2, {}, "ok", false)});
  EXPECT_EQ(shown(page(replica, "bob", ours)[1]).reactions, (std::vector<Reaction>{{"ok", 1}}));
}

TEST(Entries, TrimmingAMessageTakesItsReactionsRowsAndLaterEntriesFindNothing) {
  TempDir dir;
  HistoryStore store = open_at(dir.path() / "s");
  append(store, room());
  append(store, {entry(4, "bob", EntryKind::react, 1, {}, "+1"), entry(5, "bob", EntryKind::react, 3, {}, "+1")});
  append(store, {TrimRoom{"r", 3}});
  EXPECT_FALSE(store.target("r", 1, "bob", "+1")->found);
  EXPECT_TRUE(store.target("r", 3, "bob", "+1")->reacted) << "a message kept keeps its reactions";
  append(store, {entry(6, "bob", EntryKind::react, 1, {}, "+1", false)});  // its target is gone: nothing changes
  std::string bytes;
  auto maps = page(store, "bob", bytes);
  ASSERT_EQ(maps.front().seq, 3u);
  EXPECT_EQ(shown(maps.front()).reactions, (std::vector<Reaction>{{"+1", 1}}));
}

StoredMessage in_thread(std::uint64_t seq, const std::string& user, std::uint64_t root, std::uint64_t reply_to = 0) {
  StoredMessage m = message(seq, user, "reply " + std::to_string(seq));
  m.entry.thread = root;
  m.entry.reply_to = reply_to;
  return m;
}

/// The seqs of a page of room "r"'s thread `root` (PageQuery::thread).
std::vector<std::uint64_t> thread_seqs(const HistoryStore& store, std::uint64_t root, PageQuery query = {}) {
  query.thread = root;
  if (query.limit == 50) query.limit = 1000;
  auto read = store.page_maps("r", query);
  if (!read) throw std::runtime_error(read.error().message);
  std::vector<std::uint64_t> seqs;
  std::string_view rest = read->maps;
  while (!rest.empty()) {
    std::size_t size = 1;
    for (; size <= rest.size(); ++size)
      if (auto m = read_message_map(rest.substr(0, size))) {
        seqs.push_back(m->seq);
        break;
      }
    rest.remove_prefix(size);
  }
  return seqs;
}

void threads_of_a_room(std::optional<StoreKey> key) {
  TempDir dir;
  HistoryStore store = open_at(dir.path() / "s", key);
  append(store, room());
  append(store, {in_thread(4, "bob", 1, 1), in_thread(5, "ann", 1), message(6, "bob", "aside"),
                 in_thread(7, "bob", 1, 5)});
  std::string bytes;
  auto maps = page(store, "", bytes);
  ASSERT_EQ(maps.size(), 7u);
  EXPECT_EQ(maps[0].entry.replies, 3u);
  EXPECT_EQ(maps[0].entry.last_reply, 7u);
  EXPECT_EQ(maps[0].entry.repliers, (std::vector<std::string>{"bob", "ann"}));
  EXPECT_EQ(maps[3].entry.thread, 1u);
  EXPECT_EQ(maps[3].entry.reply_to, 1u);
  EXPECT_EQ(thread_seqs(store, 1), (std::vector<std::uint64_t>{1, 4, 5, 7}));
  PageQuery newest;
  newest.limit = 2;
  EXPECT_EQ(thread_seqs(store, 1, newest), (std::vector<std::uint64_t>{5, 7}));
  PageQuery acknowledged;
  acknowledged.up_to = 5;
  EXPECT_EQ(thread_seqs(store, 1, acknowledged), (std::vector<std::uint64_t>{1, 4, 5})) << "nothing past up_to";
  EXPECT_EQ(store.target("r", 4, "", "")->thread, 1u);
  PageQuery not_a_root;
  not_a_root.thread = 4;
  EXPECT_EQ(store.page_maps("r", not_a_root).error().code, errc::no_such_message);
  // A delete of the root keeps its thread; of a reply, keeps it in it.
  append(store, {entry(8, "ann", EntryKind::remove, 1), entry(9, "ann", EntryKind::remove, 5)});
  maps = page(store, "", bytes);
  EXPECT_TRUE(maps[0].entry.deleted);
  EXPECT_EQ(maps[0].entry.replies, 3u);
  EXPECT_EQ(maps[4].entry.thread, 1u);
  EXPECT_EQ(thread_seqs(store, 1), (std::vector<std::uint64_t>{1, 4, 5, 7}));
}

}  // namespace

TEST(Threads, AThreadsRootSumsItUpAndAPageReadsOneThreadInAStoreInClear) { threads_of_a_room(std::nullopt); }

TEST(Threads, AThreadsRootSumsItUpAndAPageReadsOneThreadInASealedStore) { threads_of_a_room(StoreKey::generate()); }

TEST(Threads, AShardCopyCarriesThreadsAndTrimmingARootTakesItsIndex) {
  TempDir dir;
  HistoryStore primary = open_at(dir.path() / "primary");
  append(primary, room());
  append(primary, {in_thread(4, "bob", 2), in_thread(5, "ann", 2), LogEntry{"s", 1, 1, "x"}});
  const fs::path copy = dir.path() / "copy";
  fs::create_directories(copy);
  ASSERT_TRUE(primary.copy_to(copy));
  HistoryStore replica = open_at(dir.path() / "replica");
  append(replica, {CreateRoom{"other", "zed", 1}});
  ASSERT_TRUE(replica.install_shard(copy, "s", [](std::string_view room) { return room == "r"; }, 0));
  std::string theirs, ours;
  page(primary, "", theirs);
  auto maps = page(replica, "", ours);
  EXPECT_EQ(ours, theirs) << "every root's summary as on the primary, counted once";
  EXPECT_EQ(thread_seqs(replica, 2), (std::vector<std::uint64_t>{2, 4, 5})) << "the thread's rows came too";
  append(replica, {in_thread(6, "bob", 2)});
  EXPECT_EQ(page(replica, "", ours)[1].entry.replies, 3u);
  append(replica, {TrimRoom{"r", 3}});
  PageQuery trimmed;
  trimmed.thread = 2;
  EXPECT_EQ(replica.page_maps("r", trimmed).error().code, errc::no_such_message) << "its root is gone";
  EXPECT_EQ(page(replica, "", ours).size(), 4u) << "the replies stay in the room";
}
