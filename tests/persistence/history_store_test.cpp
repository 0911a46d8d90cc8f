// HistoryStore against real LMDB, each test in a fresh temporary directory.
#include "switchboard/persistence/history_store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <thread>
#include <fstream>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "switchboard/persistence/lmdb.hpp"
#include "switchboard/common/message_map.hpp"

#include <msgpack.hpp>

namespace switchboard::persistence {
// Readable failure output for message comparisons.
void PrintTo(const StoredMessage& m, std::ostream* os) {
  *os << "{" << m.room << " #" << m.seq << " " << m.user << " @" << m.ts_ms << " \""
      << (m.body.size() > 40 ? m.body.substr(0, 40) + "..." : m.body) << "\" "
      << m.client_msg_id << "}";
}
}  // namespace switchboard::persistence

namespace {

namespace fs = std::filesystem;
namespace lmdb = switchboard::persistence::lmdb;
using switchboard::errc;
using switchboard::persistence::AddMember;
using switchboard::persistence::CreateRoom;
using switchboard::persistence::Durability;
using switchboard::persistence::HistoryStore;
using switchboard::persistence::MapPage;
using switchboard::persistence::Page;
using switchboard::persistence::PageQuery;
using switchboard::encode_message_map;
using switchboard::read_message_map;
using switchboard::persistence::Record;
using switchboard::persistence::RemoveMember;
using switchboard::persistence::StoredMessage;
using switchboard::persistence::StoreKey;
using switchboard::persistence::StoreOptions;
using switchboard::persistence::DeleteRoom;
using switchboard::persistence::RoomState;
using switchboard::Role;

std::vector<std::string> member_names(const RoomState& room) {
  std::vector<std::string> names;
  for (const auto& [user, role] : room.members) names.push_back(user);
  return names;
}

constexpr std::size_t kMiB = 1u << 20;

// A fresh directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::path(::testing::TempDir()) / "history_store_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Options for a store in a not-yet-existing subdirectory (open must create it).
StoreOptions options_in(const TempDir& dir) {
  StoreOptions options;
  options.dir = dir.path() / "store";
  return options;
}

HistoryStore must_open(const StoreOptions& options) {
  auto store = HistoryStore::open(options);
  if (!store) throw std::runtime_error("open failed: " + store.error().message);
  return std::move(store).value();
}

void must_append(HistoryStore& store, const std::vector<Record>& batch) {
  auto appended = store.append_batch(batch);
  if (!appended) throw std::runtime_error("append_batch failed: " + appended.error().message);
}

StoredMessage msg(const std::string& room, std::uint64_t seq, std::uint64_t ts_ms = 0,
                  std::string body = {}) {
  if (ts_ms == 0) ts_ms = 1000 + seq;
  if (body.empty()) body = "body of " + room + " #" + std::to_string(seq);
  return StoredMessage{room, seq, "user-" + std::to_string(seq % 3), ts_ms, std::move(body),
                       "cmid-" + room + "-" + std::to_string(seq)};
}

std::vector<Record> messages(const std::string& room, std::uint64_t first, std::uint64_t last) {
  std::vector<Record> out;
  for (std::uint64_t seq = first; seq <= last; ++seq) out.push_back(msg(room, seq));
  return out;
}

// The code of a failed call, errc::ok for a success (Result::error() would assert).
template <class T>
errc code_of(const switchboard::Result<T>& result) {
  return result ? errc::ok : result.error().code;
}

std::vector<std::uint64_t> seqs(const Page& page) {
  std::vector<std::uint64_t> out;
  for (const auto& m : page.messages) out.push_back(m.seq);
  return out;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t seq = first; seq <= last; ++seq) out.push_back(seq);
  return out;
}

// "left", "mid" and "right" get room ids 1, 2, 3: "mid" has neighbours on both sides
// in the messages table, so a page that runs past its room's edge shows up.
HistoryStore store_with_neighbours(const StoreOptions& options, std::uint64_t mid_messages) {
  HistoryStore store = must_open(options);
  must_append(store, {CreateRoom{"left", "alice", 1}, CreateRoom{"mid", "alice", 2},
                      CreateRoom{"right", "alice", 3}});
  must_append(store, messages("left", 1, 5));
  must_append(store, messages("right", 1, 5));
  if (mid_messages > 0) must_append(store, messages("mid", 1, mid_messages));
  return store;
}

// Writes `value` under `key` in the named database with raw LMDB, as a damaged or
// foreign file would hold it. The store must not be open.
void raw_put(const StoreOptions& options, const char* db, std::string_view key,
             std::string_view value) {
  lmdb::EnvOptions env_options;
  env_options.max_dbs = 8;
  auto env = lmdb::Env::open(options.dir.string(), env_options);
  ASSERT_TRUE(env) << env.error().message();
  auto txn = env->begin_write();
  ASSERT_TRUE(txn) << txn.error().message();
  auto dbi = txn->open_dbi(db, 0);
  ASSERT_TRUE(dbi) << dbi.error().message();
  ASSERT_TRUE(txn->put(*dbi, key, value).ok());
  ASSERT_TRUE(txn->commit().ok());
}

// The key of the last entry of a database, read with raw LMDB.
std::string raw_last_key(const StoreOptions& options, const char* db) {
  lmdb::EnvOptions env_options;
  env_options.max_dbs = 8;
  auto env = lmdb::Env::open(options.dir.string(), env_options);
  if (!env) throw std::runtime_error(env.error().message());
  auto txn = env->begin_write();  // a write txn may open a dbi without it being committed
  if (!txn) throw std::runtime_error(txn.error().message());
  auto dbi = txn->open_dbi(db, 0);
  if (!dbi) throw std::runtime_error(dbi.error().message());
  auto cursor = txn->cursor(*dbi);
  if (!cursor) throw std::runtime_error(cursor.error().message());
  auto last = cursor->get(MDB_LAST);
  if (!last) throw std::runtime_error(last.error().message());
  return std::string(last->key);
}

// The value under `key` in the named database, read with raw LMDB.
std::string raw_get(const StoreOptions& options, const char* db, std::string_view key) {
  lmdb::EnvOptions env_options;
  env_options.max_dbs = 8;
  auto env = lmdb::Env::open(options.dir.string(), env_options);
  if (!env) throw std::runtime_error(env.error().message());
  auto txn = env->begin_write();
  if (!txn) throw std::runtime_error(txn.error().message());
  auto dbi = txn->open_dbi(db, 0);
  if (!dbi) throw std::runtime_error(dbi.error().message());
  auto value = txn->get(*dbi, key);
  if (!value) throw std::runtime_error(value.error().message());
  return std::string(*value);
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// --- writing and reading back ---------------------------------------------------

TEST(HistoryStore, AppendsAndReadsBackMessages) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{"general", "alice", 100}, AddMember{"general", "alice"}});
  std::vector<StoredMessage> sent = {msg("general", 1), msg("general", 2, 5000, "héllo"),
                                     msg("general", 3, 6000, std::string("bin\0ary", 7))};
  must_append(store, {sent[0], sent[1], sent[2]});

  auto page = store.newest("general", 10);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->messages, sent);
  EXPECT_FALSE(page->more);
}

TEST(HistoryStore, CreatesItsDirectory) {
  TempDir dir;
  StoreOptions options;
  options.dir = dir.path() / "a" / "b" / "c";
  HistoryStore store = must_open(options);
  EXPECT_TRUE(fs::is_directory(options.dir));
  EXPECT_TRUE(fs::exists(options.dir / "data.mdb"));
}

TEST(HistoryStore, SeqsAndMembersSurviveReopen) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"alpha", "carol", 111}, CreateRoom{"beta", "dave", 222},
                        AddMember{"alpha", "carol"}, AddMember{"alpha", "alice"},
                        AddMember{"alpha", "bob"}, AddMember{"beta", "dave"}});
    must_append(store, messages("alpha", 1, 5));
    must_append(store, messages("beta", 1, 2));
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ASSERT_EQ(snapshot->rooms.size(), 2u);
  const auto& alpha = snapshot->rooms.at("alpha");
  EXPECT_EQ(alpha.creator, "carol");
  EXPECT_EQ(alpha.created_ms, 111u);
  EXPECT_EQ(alpha.last_seq, 5u);
  EXPECT_EQ(member_names(alpha), (std::vector<std::string>{"alice", "bob", "carol"}));
  const auto& beta = snapshot->rooms.at("beta");
  EXPECT_EQ(beta.creator, "dave");
  EXPECT_EQ(beta.created_ms, 222u);
  EXPECT_EQ(beta.last_seq, 2u);
  EXPECT_EQ(member_names(beta), (std::vector<std::string>{"dave"}));

  // The sequence carries on where it stopped, and only there.
  EXPECT_EQ(code_of(store.append_batch(std::vector<Record>{msg("alpha", 5)})), errc::internal);
  must_append(store, {msg("alpha", 6)});
  auto page = store.newest("alpha", 100);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(1, 6));
}

TEST(HistoryStore, AUserAnOwnerRemovedIsRememberedUntilAddedBackAndALeaveIsForgotten) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"staff", "ann", 1, true}, AddMember{"staff", "ann", Role::owner},
                        AddMember{"staff", "bob"}, AddMember{"staff", "cat"}, AddMember{"staff", "dan"}});
    must_append(store, {RemoveMember{"staff", "bob", true}, RemoveMember{"staff", "cat", false},
                        RemoveMember{"staff", "dan", true}});
    must_append(store, {AddMember{"staff", "dan", Role::reader}});
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  const auto& staff = snapshot->rooms.at("staff");
  EXPECT_EQ(member_names(staff), (std::vector<std::string>{"ann", "dan"}));
  EXPECT_EQ(staff.members.at("dan"), Role::reader);
  EXPECT_EQ(staff.removed, std::set<std::string>{"bob"}) << "cat left; dan was added back";
  // A deleted room forgets its removed users with its members.
  must_append(store, {DeleteRoom{"staff"}, CreateRoom{"staff", "eve", 2, true}, AddMember{"staff", "eve", Role::owner}});
  snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_TRUE(snapshot->rooms.at("staff").removed.empty());
}

TEST(HistoryStore, ABanSurvivesAReopenUntilLiftedOrEndedByAnAddAndGoesWithItsRoom) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"hall", "ann", 1}, AddMember{"hall", "ann", Role::owner}, AddMember{"hall", "bob"},
                        AddMember{"hall", "cat"}});
    // bob banned as a member; dan, never a member, banned; cat removed, then banned.
    must_append(store, {RemoveMember{"hall", "bob", true, true}, RemoveMember{"hall", "dan", true, true},
                        RemoveMember{"hall", "cat", true}});
    must_append(store, {RemoveMember{"hall", "cat", true, true}, RemoveMember{"nowhere", "bob", true, true}});
  }
  {
    HistoryStore store = must_open(options);
    auto snapshot = store.snapshot(0);
    ASSERT_TRUE(snapshot) << snapshot.error().message;
    const auto& hall = snapshot->rooms.at("hall");
    EXPECT_EQ(member_names(hall), std::vector<std::string>{"ann"});
    EXPECT_EQ(hall.banned, (std::set<std::string>{"bob", "cat", "dan"}));
    EXPECT_TRUE(hall.removed.empty()) << "a banned user is banned, not removed";
    EXPECT_EQ(snapshot->rooms.count("nowhere"), 0u);
    // An unban (a remembered removal) leaves bob removed; an AddMember ends dan's ban.
    must_append(store, {RemoveMember{"hall", "bob", true}, AddMember{"hall", "dan", Role::reader}});
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  const auto& hall = snapshot->rooms.at("hall");
  EXPECT_EQ(hall.banned, std::set<std::string>{"cat"});
  EXPECT_EQ(hall.removed, std::set<std::string>{"bob"});
  EXPECT_EQ(hall.members.at("dan"), Role::reader);
  // A deleted room forgets its bans with its members.
  must_append(store, {DeleteRoom{"hall"}, CreateRoom{"hall", "eve", 2}, AddMember{"hall", "eve", Role::owner}});
  snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_TRUE(snapshot->rooms.at("hall").banned.empty());
}

TEST(HistoryStore, ASecondOpenOfTheSameDirectoryIsRefusedWhileTheFirstIsOpen) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    auto second = HistoryStore::open(options);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, errc::unavailable);
    EXPECT_NE(second.error().message.find("'" + options.dir.string() + "' is in use by another Switchboard node"),
              std::string::npos)
        << second.error().message;
    EXPECT_NE(second.error().message.find("process " + std::to_string(::getpid())), std::string::npos)
        << second.error().message;
  }
  EXPECT_TRUE(HistoryStore::open(options)) << "free again once the first is closed";
}

TEST(HistoryStore, RoomsCreatedInLaterSessionsGetTheirOwnIds) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"first", "alice", 1}, msg("first", 1)});
  }
  {
    HistoryStore store = must_open(options);  // a reused id would share "first"'s keys
    must_append(store, {CreateRoom{"second", "bob", 2}, msg("second", 1), msg("second", 2)});
  }
  HistoryStore store = must_open(options);
  auto first = store.newest("first", 10);
  auto second = store.newest("second", 10);
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_EQ(first->messages, std::vector<StoredMessage>{msg("first", 1)});
  EXPECT_EQ(second->messages, (std::vector<StoredMessage>{msg("second", 1), msg("second", 2)}));
}

// --- paging -------------------------------------------------------------------------

TEST(HistoryStore, NewestReturnsTheLatestInAscendingOrder) {
  TempDir dir;
  HistoryStore store = store_with_neighbours(options_in(dir), 10);

  auto three = store.newest("mid", 3);
  ASSERT_TRUE(three) << three.error().message;
  EXPECT_EQ(three->messages,
            (std::vector<StoredMessage>{msg("mid", 8), msg("mid", 9), msg("mid", 10)}));
  EXPECT_TRUE(three->more);

  auto nine = store.newest("mid", 9);
  ASSERT_TRUE(nine);
  EXPECT_EQ(seqs(*nine), range(2, 10));
  EXPECT_TRUE(nine->more);

  for (std::size_t limit : {10u, 11u, 1000u}) {
    auto all = store.newest("mid", limit);
    ASSERT_TRUE(all);
    EXPECT_EQ(seqs(*all), range(1, 10)) << "limit " << limit;
    EXPECT_FALSE(all->more) << "limit " << limit;
  }
  // The last room in the table has no right neighbour to bound it.
  auto right = store.newest("right", 2);
  ASSERT_TRUE(right);
  EXPECT_EQ(seqs(*right), range(4, 5));
  EXPECT_TRUE(right->more);
}

TEST(HistoryStore, PagesBackwardFromSeq) {
  TempDir dir;
  HistoryStore store = store_with_neighbours(options_in(dir), 10);

  auto page = store.before("mid", 8, 3);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->messages, (std::vector<StoredMessage>{msg("mid", 5), msg("mid", 6), msg("mid", 7)}));
  EXPECT_TRUE(page->more);

  page = store.before("mid", 4, 3);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(1, 3));
  EXPECT_FALSE(page->more);

  page = store.before("mid", 3, 3);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(1, 2));
  EXPECT_FALSE(page->more);

  for (std::uint64_t seq : {std::uint64_t{0}, std::uint64_t{1}}) {
    page = store.before("mid", seq, 3);
    ASSERT_TRUE(page);
    EXPECT_TRUE(page->messages.empty()) << "before " << seq;
    EXPECT_FALSE(page->more) << "before " << seq;
  }

  // Beyond the last seq: the newest ones.
  for (std::uint64_t seq : {std::uint64_t{11}, std::uint64_t{500},
                            std::numeric_limits<std::uint64_t>::max()}) {
    page = store.before("mid", seq, 3);
    ASSERT_TRUE(page);
    EXPECT_EQ(seqs(*page), range(8, 10)) << "before " << seq;
    EXPECT_TRUE(page->more) << "before " << seq;
  }

  // Following `more` from the newest page visits every message once, in order.
  std::vector<std::uint64_t> seen;
  auto cursor = store.newest("mid", 3);
  ASSERT_TRUE(cursor);
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 10);
    auto got = seqs(*cursor);
    seen.insert(seen.begin(), got.begin(), got.end());
    if (!cursor->more) break;
    cursor = store.before("mid", cursor->messages.front().seq, 3);
    ASSERT_TRUE(cursor);
  }
  EXPECT_EQ(seen, range(1, 10));
}

TEST(HistoryStore, PagesForwardFromSeq) {
  TempDir dir;
  HistoryStore store = store_with_neighbours(options_in(dir), 10);

  auto page = store.after("mid", 0, 3);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->messages, (std::vector<StoredMessage>{msg("mid", 1), msg("mid", 2), msg("mid", 3)}));
  EXPECT_TRUE(page->more);

  page = store.after("mid", 6, 3);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(7, 9));
  EXPECT_TRUE(page->more);

  page = store.after("mid", 7, 3);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(8, 10));
  EXPECT_FALSE(page->more);

  for (std::uint64_t seq : {std::uint64_t{10}, std::uint64_t{11},
                            std::numeric_limits<std::uint64_t>::max()}) {
    page = store.after("mid", seq, 3);
    ASSERT_TRUE(page);
    EXPECT_TRUE(page->messages.empty()) << "after " << seq;
    EXPECT_FALSE(page->more) << "after " << seq;
  }

  // The first room in the table has no left neighbour to bound it.
  page = store.after("left", 0, 100);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(1, 5));
  EXPECT_FALSE(page->more);
}

TEST(HistoryStore, ZeroLimitTellsWhetherMessagesLieThatWay) {
  TempDir dir;
  HistoryStore store = store_with_neighbours(options_in(dir), 10);
  must_append(store, {CreateRoom{"empty", "alice", 4}});

  struct Case {
    const char* what;
    switchboard::Result<Page> page;
    bool more;
  };
  Case cases[] = {
      {"newest mid", store.newest("mid", 0), true},
      {"before mid 1", store.before("mid", 1, 0), false},
      {"before mid 2", store.before("mid", 2, 0), true},
      {"after mid 9", store.after("mid", 9, 0), true},
      {"after mid 10", store.after("mid", 10, 0), false},
      {"newest empty", store.newest("empty", 0), false},
      {"after empty 0", store.after("empty", 0, 0), false},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(c.page) << c.what;
    EXPECT_TRUE(c.page->messages.empty()) << c.what;
    EXPECT_EQ(c.page->more, c.more) << c.what;
  }
}

TEST(HistoryStore, EmptyRoomGivesEmptyPages) {
  TempDir dir;
  HistoryStore store = store_with_neighbours(options_in(dir), 0);  // "mid" has no message
  for (auto page : {store.newest("mid", 10), store.before("mid", 5, 10), store.before("mid", 0, 10),
                    store.after("mid", 0, 10)}) {
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_TRUE(page->messages.empty());
    EXPECT_FALSE(page->more);
  }
}

TEST(HistoryStore, UnknownRoomIsNoSuchRoom) {
  TempDir dir;
  HistoryStore store = store_with_neighbours(options_in(dir), 3);
  for (const std::string& room : {std::string("nope"), std::string(), std::string(600, 'x')}) {
    auto newest = store.newest(room, 10);
    auto before = store.before(room, 2, 10);
    auto after = store.after(room, 0, 10);
    ASSERT_FALSE(newest);
    ASSERT_FALSE(before);
    ASSERT_FALSE(after);
    EXPECT_EQ(newest.error().code, errc::no_such_room);
    EXPECT_EQ(before.error().code, errc::no_such_room);
    EXPECT_EQ(after.error().code, errc::no_such_room);
  }
}

// --- batches ------------------------------------------------------------------------

// What BatchWithBadSeqWritesNothing expects after each rejected batch.
void expect_only_first_three(const HistoryStore& store) {
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ASSERT_EQ(snapshot->rooms.size(), 1u);
  EXPECT_EQ(snapshot->rooms.at("a").last_seq, 3u);
  EXPECT_EQ(member_names(snapshot->rooms.at("a")), std::vector<std::string>{"alice"});
  EXPECT_EQ(snapshot->recent.size(), 3u);
  auto page = store.newest("a", 10);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(1, 3));
  EXPECT_EQ(code_of(store.newest("b", 10)), errc::no_such_room);
}

TEST(HistoryStore, BatchWithBadSeqWritesNothing) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"a", "alice", 1}, AddMember{"a", "alice"}});
    must_append(store, messages("a", 1, 3));

    // A gap, after records that were fine on their own.
    std::vector<Record> gap = {CreateRoom{"b", "bob", 2}, AddMember{"b", "bob"},
                               AddMember{"a", "bob"}, RemoveMember{"a", "alice"},
                               msg("a", 4), msg("b", 1), msg("a", 5), msg("a", 7)};
    auto appended = store.append_batch(gap);
    ASSERT_FALSE(appended);
    EXPECT_EQ(appended.error().code, errc::internal);
    const std::string& why = appended.error().message;
    EXPECT_NE(why.find("'a'"), std::string::npos) << why;
    EXPECT_NE(why.find("seq 7"), std::string::npos) << why;
    EXPECT_NE(why.find("last seq 5"), std::string::npos) << why;
    expect_only_first_three(store);

    // A seq already stored, a seq repeated inside one batch, seq 0.
    for (const std::vector<Record>& bad : {std::vector<Record>{msg("a", 3)},
                                           std::vector<Record>{msg("a", 4), msg("a", 4)},
                                           std::vector<Record>{msg("a", 0)}}) {
      auto rejected = store.append_batch(bad);
      ASSERT_FALSE(rejected);
      EXPECT_EQ(rejected.error().code, errc::internal);
    }
    expect_only_first_three(store);
  }
  HistoryStore store = must_open(options);
  expect_only_first_three(store);

  // The store carries on from the last good state.
  must_append(store, messages("a", 4, 5));
  auto page = store.newest("a", 10);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), range(1, 5));
}

TEST(HistoryStore, MessageForUnknownRoomFailsTheBatch) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  auto appended = store.append_batch(
      std::vector<Record>{CreateRoom{"a", "alice", 1}, msg("a", 1), msg("ghost", 1)});
  ASSERT_FALSE(appended);
  EXPECT_EQ(appended.error().code, errc::internal);
  EXPECT_NE(appended.error().message.find("'ghost'"), std::string::npos) << appended.error().message;
  EXPECT_EQ(code_of(store.newest("a", 10)), errc::no_such_room);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_TRUE(snapshot->rooms.empty());
}

TEST(HistoryStore, AddMemberToUnknownRoomFailsTheBatch) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  auto appended = store.append_batch(
      std::vector<Record>{CreateRoom{"a", "alice", 1}, AddMember{"ghost", "alice"}});
  ASSERT_FALSE(appended);
  EXPECT_EQ(appended.error().code, errc::internal);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_TRUE(snapshot->rooms.empty());
}

TEST(HistoryStore, RoomCreatedEarlierInTheBatchTakesMessages) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{"r", "alice", 7}, AddMember{"r", "alice"}, msg("r", 1),
                      msg("r", 2), CreateRoom{"s", "bob", 8}, msg("s", 1), msg("r", 3)});
  auto r = store.newest("r", 10);
  auto s = store.newest("s", 10);
  ASSERT_TRUE(r);
  ASSERT_TRUE(s);
  EXPECT_EQ(seqs(*r), range(1, 3));
  EXPECT_EQ(s->messages, std::vector<StoredMessage>{msg("s", 1)});
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->rooms.at("r").last_seq, 3u);
  EXPECT_EQ(snapshot->rooms.at("s").last_seq, 1u);
}

TEST(HistoryStore, CreateJoinAndLeaveAreIdempotent) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{"r", "alice", 100}, CreateRoom{"r", "mallory", 999},
                      AddMember{"r", "alice"}, AddMember{"r", "alice"}, AddMember{"r", "bob"}});
  must_append(store, messages("r", 1, 2));
  must_append(store, {CreateRoom{"r", "mallory", 555}, AddMember{"r", "bob"},
                      RemoveMember{"r", "carol"}, RemoveMember{"r", "bob"},
                      RemoveMember{"r", "bob"}, RemoveMember{"nowhere", "bob"}});

  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ASSERT_EQ(snapshot->rooms.size(), 1u);
  const auto& r = snapshot->rooms.at("r");
  EXPECT_EQ(r.creator, "alice");
  EXPECT_EQ(r.created_ms, 100u);
  EXPECT_EQ(r.last_seq, 2u);  // re-creating kept the history
  EXPECT_EQ(member_names(r), std::vector<std::string>{"alice"});
  must_append(store, {msg("r", 3)});
}

TEST(HistoryStore, NamesThatCannotBeKeysFailTheBatch) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{std::string(511, 'r'), "alice", 1},
                      AddMember{std::string(511, 'r'), std::string(507, 'u')}});

  struct Case {
    std::vector<Record> batch;
    errc code;
  };
  Case cases[] = {
      {{CreateRoom{"", "alice", 1}}, errc::bad_field},
      {{CreateRoom{std::string(512, 'r'), "alice", 1}}, errc::too_large},
      {{CreateRoom{"ok", "alice", 1}, AddMember{"ok", ""}}, errc::bad_field},
      {{CreateRoom{"ok", "alice", 1}, AddMember{"ok", std::string(508, 'u')}}, errc::too_large},
  };
  for (const auto& c : cases) {
    auto appended = store.append_batch(c.batch);
    ASSERT_FALSE(appended);
    EXPECT_EQ(appended.error().code, c.code) << appended.error().message;
  }
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  ASSERT_EQ(snapshot->rooms.size(), 1u);
  EXPECT_EQ(member_names(snapshot->rooms.begin()->second), std::vector<std::string>{std::string(507, 'u')});
}

// --- snapshot -----------------------------------------------------------------------

TEST(HistoryStore, SnapshotRecentRespectsSinceMs) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{"b", "bob", 1}, CreateRoom{"a", "alice", 2},
                      CreateRoom{"quiet", "carol", 3}});
  must_append(store, {msg("b", 1, 150), msg("a", 1, 100), msg("a", 2, 200), msg("b", 2, 350),
                      msg("a", 3, 300), msg("a", 4, 400)});

  auto snapshot = store.snapshot(300);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ASSERT_EQ(snapshot->recent.size(), 3u);
  struct Want {
    std::string room;
    std::uint64_t seq, ts;
  };
  const Want want[] = {{"a", 3, 300}, {"a", 4, 400}, {"b", 2, 350}};  // (room, seq) order
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& got = snapshot->recent[i];
    EXPECT_EQ(got.room, want[i].room) << i;
    EXPECT_EQ(got.seq, want[i].seq) << i;
    EXPECT_EQ(got.ts_ms, want[i].ts) << i;
    EXPECT_EQ(got.user, msg(want[i].room, want[i].seq).user) << i;
    EXPECT_EQ(got.client_msg_id, msg(want[i].room, want[i].seq).client_msg_id) << i;
  }
  EXPECT_EQ(snapshot->rooms.size(), 3u);
  EXPECT_EQ(snapshot->rooms.at("quiet").last_seq, 0u);

  auto all = store.snapshot(0);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->recent.size(), 6u);
  auto none = store.snapshot(401);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->recent.empty());
  EXPECT_EQ(none->rooms.at("a").last_seq, 4u);

  // The walk goes back from the last message and stops at the first older one; it
  // does not scan the room's whole history (chat stamps ts_ms in seq order).
  must_append(store, {msg("quiet", 1, 900), msg("quiet", 2, 10)});
  auto walked = store.snapshot(300);
  ASSERT_TRUE(walked);
  for (const auto& p : walked->recent) EXPECT_NE(p.room, "quiet") << p.seq;
}

// --- map size -----------------------------------------------------------------------

// About 1.6 MB of messages for room `room` from seq `first`: more than a 1 MiB map.
std::vector<Record> big_batch(const std::string& room, std::uint64_t first, std::size_t count = 400) {
  std::vector<Record> batch;
  for (std::size_t i = 0; i < count; ++i)
    batch.push_back(msg(room, first + i, 0, std::string(4000, static_cast<char>('a' + i % 26))));
  return batch;
}

TEST(HistoryStore, MapFullIsStorageFullAndWritesNothing) {
  TempDir dir;
  StoreOptions options = options_in(dir);
  options.initial_map_bytes = kMiB;
  options.max_map_bytes = kMiB;
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"a", "alice", 1}, AddMember{"a", "alice"}});
    must_append(store, messages("a", 1, 3));

    std::vector<Record> batch = {CreateRoom{"b", "bob", 2}, AddMember{"a", "bob"}};
    for (auto& r : big_batch("a", 4)) batch.push_back(std::move(r));
    auto appended = store.append_batch(batch);
    ASSERT_FALSE(appended);
    EXPECT_EQ(appended.error().code, errc::storage_full);
    EXPECT_NE(appended.error().message.find("MDB_MAP_FULL"), std::string::npos)
        << appended.error().message;
    EXPECT_EQ(store.map_bytes(), kMiB);

    // Still usable: a small batch goes through.
    must_append(store, {msg("a", 4)});
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  ASSERT_EQ(snapshot->rooms.size(), 1u);
  EXPECT_EQ(snapshot->rooms.at("a").last_seq, 4u);
  EXPECT_EQ(member_names(snapshot->rooms.at("a")), std::vector<std::string>{"alice"});
  auto page = store.newest("a", 1000);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->messages,
            (std::vector<StoredMessage>{msg("a", 1), msg("a", 2), msg("a", 3), msg("a", 4)}));
}

TEST(HistoryStore, MapGrowsToFitABatch) {
  TempDir dir;
  StoreOptions options = options_in(dir);
  options.initial_map_bytes = kMiB;
  options.max_map_bytes = 64 * kMiB;
  std::vector<Record> batch = {CreateRoom{"a", "alice", 1}};
  for (auto& r : big_batch("a", 1, 600)) batch.push_back(std::move(r));
  {
    HistoryStore store = must_open(options);
    EXPECT_EQ(store.map_bytes(), kMiB);
    must_append(store, batch);
    EXPECT_GT(store.map_bytes(), kMiB);
    EXPECT_LE(store.map_bytes(), 64 * kMiB);
  }
  HistoryStore store = must_open(options);
  auto page = store.newest("a", 1000);
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->messages.size(), 600u);
  for (std::size_t i = 0; i < 600; ++i)
    ASSERT_EQ(page->messages[i], std::get<StoredMessage>(batch[i + 1])) << i;
  must_append(store, {msg("a", 601)});
}

TEST(HistoryStore, MapGrowsOnlyUpToMaxMapBytes) {
  TempDir dir;
  StoreOptions options = options_in(dir);
  options.initial_map_bytes = kMiB;
  options.max_map_bytes = 2 * kMiB;
  HistoryStore store = must_open(options);
  must_append(store, {CreateRoom{"a", "alice", 1}});
  auto appended = store.append_batch(big_batch("a", 1, 1000));  // about 4 MB
  ASSERT_FALSE(appended);
  EXPECT_EQ(appended.error().code, errc::storage_full);
  EXPECT_EQ(store.map_bytes(), 2 * kMiB);
  must_append(store, big_batch("a", 1, 300));  // fits the grown map
  auto page = store.newest("a", 0);
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->more);
}

// --- durability and format ------------------------------------------------------------

TEST(HistoryStore, NosyncStoreSurvivesProcessCrash) {
  TempDir dir;
  StoreOptions options = options_in(dir);
  options.durability = Durability::nosync;

  pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    // No gtest in here: a failure is the exit code; success is dying by SIGKILL
    // without closing anything.
    auto store = HistoryStore::open(options);
    if (!store) ::_exit(2);
    std::vector<Record> batch = {CreateRoom{"r", "alice", 1}, AddMember{"r", "alice"}};
    for (auto& r : messages("r", 1, 3)) batch.push_back(std::move(r));
    if (!store->append_batch(batch)) ::_exit(3);
    ::kill(::getpid(), SIGKILL);
    ::_exit(4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);

  options.durability = Durability::sync;
  HistoryStore store = must_open(options);
  auto page = store.newest("r", 10);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->messages, (std::vector<StoredMessage>{msg("r", 1), msg("r", 2), msg("r", 3)}));
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(member_names(snapshot->rooms.at("r")), std::vector<std::string>{"alice"});
}

TEST(HistoryStore, UnknownFormatVersionIsRefused) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"a", "alice", 1}});
  }
  must_open(options);  // its own version opens
  raw_put(options, "meta", "format", be32(3));  // a later build's
  auto reopened = HistoryStore::open(options);
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().code, errc::internal);
  EXPECT_NE(reopened.error().message.find("version 3"), std::string::npos) << reopened.error().message;
}

TEST(HistoryStore, CorruptRecordIsInternalErrorNotCrash) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"a", "alice", 1}, msg("a", 1), msg("a", 2)});
  }
  // An array header claiming 4 billion elements (msgpack-c issue #1013) as message 2.
  raw_put(options, "messages", raw_last_key(options, "messages"), "\xdd\xff\xff\xff\xff");
  {
    HistoryStore store = must_open(options);
    auto newest = store.newest("a", 10);
    ASSERT_FALSE(newest);
    EXPECT_EQ(newest.error().code, errc::internal);
    EXPECT_NE(newest.error().message.find("corrupt record"), std::string::npos)
        << newest.error().message;
    auto snapshot = store.snapshot(0);
    ASSERT_FALSE(snapshot);
    EXPECT_EQ(snapshot.error().code, errc::internal);
    auto first = store.after("a", 0, 1);  // message 1 is still readable
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_EQ(first->messages, std::vector<StoredMessage>{msg("a", 1)});
    EXPECT_TRUE(first->more);
  }
  // A room record of the wrong shape.
  raw_put(options, "rooms", "a", "\x93\x01\x02\x03");
  HistoryStore store = must_open(options);
  auto newest = store.newest("a", 10);
  ASSERT_FALSE(newest);
  EXPECT_EQ(newest.error().code, errc::internal);
}

TEST(HistoryStore, OpenReportsAnUnusableDirectory) {
  TempDir dir;
  StoreOptions options;
  options.dir = dir.path() / "file";
  std::ofstream(options.dir) << "not a directory";
  auto store = HistoryStore::open(options);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, errc::unavailable);
  EXPECT_NE(store.error().message.find(options.dir.string()), std::string::npos)
      << store.error().message;
}

// --- sealed stores (encryption at rest) --------------------------------------------

StoreOptions sealed_in(const TempDir& dir, const StoreKey& key) {
  StoreOptions options = options_in(dir);
  options.key = key;
  return options;
}

TEST(HistoryStore, ASealedStoreReadsBackItsMessagesAndKeepsNoBodyInClear) {
  const StoreKey key = StoreKey::generate();
  const std::string secret = "sealed-body-7f3a";
  std::vector<StoredMessage> sent;
  for (std::uint64_t seq = 1; seq <= 50; ++seq)
    sent.push_back(msg("general", seq, 0, secret + " #" + std::to_string(seq) + std::string(seq * 20, 'x')));
  sent.push_back(msg("general", 51, 0, std::string("bin\0ary", 7)));
  std::vector<Record> batch = {CreateRoom{"general", "alice", 1}, AddMember{"general", "alice"}};
  batch.insert(batch.end(), sent.begin(), sent.end());

  TempDir sealed_dir, clear_dir;
  for (const StoreOptions& options : {sealed_in(sealed_dir, key), options_in(clear_dir)}) {
    HistoryStore store = must_open(options);
    must_append(store, batch);
  }
  HistoryStore store = must_open(sealed_in(sealed_dir, key));  // reopened: the key is checked, and fits
  auto page = store.after("general", 0, 100);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->messages, sent);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  EXPECT_EQ(snapshot->recent.size(), sent.size());
  EXPECT_EQ(snapshot->recent.back().client_msg_id, sent.back().client_msg_id);

  const std::string sealed_file = file_bytes(sealed_dir.path() / "store" / "data.mdb");
  const std::string clear_file = file_bytes(clear_dir.path() / "store" / "data.mdb");
  EXPECT_NE(clear_file.find(secret), std::string::npos) << "the search works: a clear store shows the bodies";
  EXPECT_EQ(sealed_file.find(secret), std::string::npos) << "a body is in the sealed store's file in clear";
  EXPECT_EQ(sealed_file.find(std::string(200, 'x')), std::string::npos);
  for (const char* in_clear : {"general", "alice", "cmid-general-51"})
    EXPECT_NE(sealed_file.find(in_clear), std::string::npos) << in_clear << " stays queryable";
}

TEST(HistoryStore, ASealedStoreOpensOnlyWithItsOwnKey) {
  const StoreKey key = StoreKey::generate();
  TempDir sealed, clear, empty;
  {
    HistoryStore store = must_open(sealed_in(sealed, key));
    must_append(store, {CreateRoom{"a", "alice", 1}, msg("a", 1)});
  }
  {
    HistoryStore store = must_open(options_in(clear));
    must_append(store, {CreateRoom{"a", "alice", 1}, msg("a", 1)});
  }
  struct Case { const char* name; StoreOptions options; const char* says; };
  for (const Case& c : {Case{"no key", options_in(sealed), "give its key"},
                        Case{"another key", sealed_in(sealed, StoreKey::generate()), "another key"},
                        Case{"a key for a store in clear", sealed_in(clear, key), "holds messages in clear"}}) {
    SCOPED_TRACE(c.name);
    auto opened = HistoryStore::open(c.options);
    ASSERT_FALSE(opened);
    EXPECT_EQ(opened.error().code, errc::bad_field);
    EXPECT_NE(opened.error().message.find(c.says), std::string::npos) << opened.error().message;
  }
  // The refusals changed nothing: the stores still open as they were.
  EXPECT_EQ(must_open(sealed_in(sealed, key)).newest("a", 1)->messages, std::vector<StoredMessage>{msg("a", 1)});
  EXPECT_EQ(must_open(options_in(clear)).newest("a", 1)->messages, std::vector<StoredMessage>{msg("a", 1)});
  // A store with rooms but no message yet may still become sealed.
  {
    HistoryStore store = must_open(options_in(empty));
    must_append(store, {CreateRoom{"a", "alice", 1}});
  }
  HistoryStore now_sealed = must_open(sealed_in(empty, key));
  must_append(now_sealed, {msg("a", 1)});
  EXPECT_FALSE(HistoryStore::open(options_in(empty))) << "and from then on needs its key";
}

TEST(HistoryStore, AChangedOrMovedSealedRecordIsReportedNeverRead) {
  const StoreKey key = StoreKey::generate();
  TempDir dir;
  const StoreOptions options = sealed_in(dir, key);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"a", "alice", 1}, msg("a", 1, 0, std::string(300, 'b')), msg("a", 2), msg("a", 3)});
  }
  const std::string key1 = raw_last_key(options, "messages").substr(0, 4) + std::string(7, '\0') + "\x01";
  const std::string key2 = key1.substr(0, 11) + "\x02";
  const std::string key3 = key1.substr(0, 11) + "\x03";
  const std::string first = raw_get(options, "messages", key1);
  const std::string second = raw_get(options, "messages", key2);
  const std::string third = raw_get(options, "messages", key3);

  auto expect_refused = [&](const char* what, std::uint64_t seq) {
    SCOPED_TRACE(what);
    HistoryStore store = must_open(options);
    auto page = store.after("a", seq - 1, 1);
    ASSERT_FALSE(page);
    EXPECT_EQ(page.error().code, errc::internal);
    EXPECT_NE(page.error().message.find("seq " + std::to_string(seq) + " fails authentication"), std::string::npos)
        << page.error().message;
    if (seq > 1) {  // the messages before it are still read
      auto before = store.after("a", 0, seq - 1);
      ASSERT_TRUE(before) << before.error().message;
      EXPECT_EQ(before->messages.size(), seq - 1);
    }
  };
  std::string changed = first;
  changed[changed.size() / 2] = static_cast<char>(changed[changed.size() / 2] ^ 0x20);  // inside the sealed body
  raw_put(options, "messages", key1, changed);
  expect_refused("a byte of the body changed", 1);
  raw_put(options, "messages", key1, first);
  raw_put(options, "messages", key2, first);
  expect_refused("seq 1's record copied over seq 2", 2);
  raw_put(options, "messages", key2, second);
  std::string other_user = third;
  other_user[other_user.find("user-0")] = 'U';  // a field kept in clear
  raw_put(options, "messages", key3, other_user);
  expect_refused("the user in clear changed", 3);
  const std::string clear_body = std::string("\x94\xa6") + "user-0" + "\xcd\x03\xeb" + "\xa4" + "evil" + "\xa8" +
                                 "cmid-a-3";  // [user, ts, body, cmid] with the body in clear
  raw_put(options, "messages", key3, clear_body);
  expect_refused("a body in clear put in a sealed store", 3);
  raw_put(options, "messages", key3, third);
  auto restored = must_open(options).after("a", 0, 3);  // the records as they were read again
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(restored->messages.size(), 3u);
}

}  // namespace

// --- roles, private rooms, deletion ------------------------------------------------

TEST(HistoryStore, RolesAndPrivateRoomsSurviveAReopenAndAnAddMemberOfAMemberSetsItsRole) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"staff", "ann", 1, true}, AddMember{"staff", "ann", Role::owner},
                        AddMember{"staff", "bob", Role::reader}, CreateRoom{"lobby", "cat", 2},
                        AddMember{"lobby", "cat", Role::owner}, AddMember{"lobby", "dan"}});
    must_append(store, {AddMember{"staff", "bob", Role::member}});  // bob promoted
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  const RoomState& staff = snapshot->rooms.at("staff");
  EXPECT_TRUE(staff.private_room);
  EXPECT_EQ(staff.members, (std::map<std::string, Role>{{"ann", Role::owner}, {"bob", Role::member}}));
  const RoomState& lobby = snapshot->rooms.at("lobby");
  EXPECT_FALSE(lobby.private_room);
  EXPECT_EQ(lobby.members, (std::map<std::string, Role>{{"cat", Role::owner}, {"dan", Role::member}}));
}

TEST(HistoryStore, ADeletedRoomLosesItsMembersAndHistoryAndANewRoomOfItsNameStartsAtSeqOne) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"gone", "ann", 1}, AddMember{"gone", "ann", Role::owner}, AddMember{"gone", "bob"},
                        CreateRoom{"kept", "ann", 1}, AddMember{"kept", "ann", Role::owner}});
    must_append(store, messages("gone", 1, 50));
    must_append(store, messages("kept", 1, 3));
    must_append(store, {DeleteRoom{"gone"}});
    EXPECT_EQ(code_of(store.newest("gone", 10)), errc::no_such_room);
    EXPECT_EQ(code_of(store.after("gone", 0, 10)), errc::no_such_room);

    // Made and deleted in one batch; deleted and made again in one batch: the new room
    // is empty and counts from 1.
    must_append(store, {CreateRoom{"brief", "ann", 2}, DeleteRoom{"brief"}, CreateRoom{"gone", "cat", 3},
                        AddMember{"gone", "cat", Role::owner}, msg("gone", 1)});
    auto page = store.newest("gone", 100);
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_EQ(seqs(*page), range(1, 1));
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  EXPECT_EQ(snapshot->rooms.size(), 2u);  // kept, and the new gone
  EXPECT_EQ(snapshot->rooms.at("gone").creator, "cat");
  EXPECT_EQ(snapshot->rooms.at("gone").last_seq, 1u);
  EXPECT_EQ(member_names(snapshot->rooms.at("gone")), std::vector<std::string>{"cat"});
  auto kept = store.newest("kept", 10);
  ASSERT_TRUE(kept);
  EXPECT_EQ(seqs(*kept), range(1, 3));
}

// The replication log (docs/REPLICATION.md): entries stored with the batch that made
// them, numbered gaplessly per shard, read back after a position, trimmed once every
// replica has them; the position survives a reopen and a trim.
TEST(HistoryStore, ReplicationLogIsGaplessPerShardReadAfterAPositionAndTrimmed) {
  using switchboard::persistence::LogEntry;
  using switchboard::persistence::LogPosition;
  using switchboard::persistence::TrimLog;
  TempDir dir;
  const auto options = options_in(dir);
  {
    HistoryStore store = must_open(options);
    for (std::uint64_t lsn = 1; lsn <= 5; ++lsn) {
      std::vector<Record> batch = {LogEntry{"s1", 1, lsn, "entry " + std::to_string(lsn)}};
      if (lsn == 1) batch.insert(batch.begin(), CreateRoom{"r", "ann", 1});
      batch.push_back(msg("r", lsn));
      must_append(store, batch);
    }
    must_append(store, {LogEntry{"s2", 3, 1, "other shard"}});
    // A gap, or an entry again, fails its whole batch: the message with it is not stored.
    for (std::uint64_t lsn : {7u, 5u}) {
      std::vector<Record> bad = {msg("r", 6), LogEntry{"s1", 1, lsn, "x"}};
      EXPECT_EQ(code_of(store.append_batch(bad)), errc::internal) << lsn;
    }
    EXPECT_EQ(store.newest("r", 10)->messages.size(), 5u);
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->logs, (std::map<std::string, LogPosition>{{"s1", {1, 5}}, {"s2", {3, 1}}}));

  auto read = store.log_after("s1", 2, 10, 1 << 20);
  ASSERT_TRUE(read);
  ASSERT_EQ(read->entries.size(), 3u);
  EXPECT_EQ(read->entries[0], (LogEntry{"s1", 1, 3, "entry 3"}));
  EXPECT_EQ(read->entries[2].lsn, 5u);
  EXPECT_FALSE(read->trimmed);
  EXPECT_EQ(store.log_after("s1", 0, 2, 1 << 20)->entries.size(), 2u) << "at most max_entries";
  EXPECT_EQ(store.log_after("s1", 0, 10, 1)->entries.size(), 1u) << "at least one entry past max_bytes";
  EXPECT_TRUE(store.log_after("s1", 5, 10, 1 << 20)->entries.empty()) << "nothing after the end";
  EXPECT_TRUE(store.log_after("nope", 0, 10, 1 << 20)->entries.empty());

  must_append(store, {TrimLog{"s1", 3}});
  EXPECT_TRUE(store.log_after("s1", 1, 10, 1 << 20)->trimmed) << "entry 2 is gone: a snapshot is needed";
  EXPECT_EQ(store.log_after("s1", 3, 10, 1 << 20)->entries.size(), 2u) << "entries past the trim stay";
  EXPECT_EQ(store.log_after("s2", 0, 10, 1 << 20)->entries.size(), 1u) << "another shard's log is not touched";
  must_append(store, {TrimLog{"s1", 5}});
  EXPECT_TRUE(store.log_after("s1", 4, 10, 1 << 20)->trimmed);
  EXPECT_TRUE(store.log_after("s1", 5, 10, 1 << 20)->entries.empty());
  EXPECT_FALSE(store.log_after("s1", 5, 10, 1 << 20)->trimmed);
  must_append(store, {LogEntry{"s1", 2, 6, "after the trim"}});
  EXPECT_EQ((store.snapshot(0)->logs.at("s1")), (LogPosition{2, 6})) << "the position outlives the trim";
}

// Failover (docs/REPLICATION.md): a node's vote and the terms of each shard's log are
// stored and read back at startup; a log tail no majority had is truncated, and its
// messages leave the history for the reconciled table, sealed ones still sealed.
TEST(HistoryStore, VotesTermsAndATruncatedTailWhoseMessagesAreReconciled) {
  using switchboard::persistence::LogEntry;
  using switchboard::persistence::LogPosition;
  using switchboard::persistence::ReconcileMessage;
  using switchboard::persistence::ShardVote;
  using switchboard::persistence::TermStart;
  using switchboard::persistence::TruncateLog;
  TempDir dir;
  auto options = options_in(dir);
  options.key = switchboard::persistence::StoreKey::generate();
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"r", "ann", 1}, LogEntry{"s1", 1, 1, "1"}});
    for (std::uint64_t seq = 1; seq <= 4; ++seq)
      must_append(store, {msg("r", seq), LogEntry{"s1", seq <= 2 ? 1u : 2u, seq + 1, "m" + std::to_string(seq)}});
    must_append(store, {ShardVote{"s1", 2, "b", "b"}});
    must_append(store, {ShardVote{"s1", 3, "c", ""}});  // a later vote replaces it
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->logs.at("s1"), (LogPosition{2, 5}));
  EXPECT_EQ(snapshot->terms.at("s1"), (std::vector<TermStart>{{1, 1}, {2, 4}})) << "term 2 began at lsn 4";
  EXPECT_EQ(snapshot->votes.at("s1"), (ShardVote{"s1", 3, "c", ""}));

  // Only a room's last message can be reconciled; a truncation cannot go past the end.
  EXPECT_EQ(code_of(store.append_batch(std::vector<Record>{ReconcileMessage{"r", 3}})), errc::internal);
  EXPECT_EQ(code_of(store.append_batch(std::vector<Record>{TruncateLog{"s1", 6}})), errc::internal);
  // Entries 4 and 5 (messages 3 and 4) were never on a majority: taken back, newest first.
  must_append(store, {ReconcileMessage{"r", 4}, ReconcileMessage{"r", 3}, TruncateLog{"s1", 3}});
  EXPECT_EQ(seqs(*store.newest("r", 10)), range(1, 2));
  snapshot = store.snapshot(0);
  EXPECT_EQ(snapshot->logs.at("s1"), (LogPosition{1, 3})) << "the position is the last entry kept, with its term";
  EXPECT_EQ(snapshot->terms.at("s1"), (std::vector<TermStart>{{1, 1}})) << "term 2 has no entry left";
  EXPECT_EQ(snapshot->rooms.at("r").last_seq, 2u);
  EXPECT_TRUE(store.log_after("s1", 3, 10, 1 << 20)->entries.empty());
  auto reconciled = store.reconciled();
  ASSERT_TRUE(reconciled) << reconciled.error().message;
  ASSERT_EQ(reconciled->size(), 2u);
  EXPECT_EQ((*reconciled)[0], msg("r", 4)) << "kept whole, and opened with the store's key";
  EXPECT_EQ((*reconciled)[1], msg("r", 3));
  // The room goes on from there: seq 3 again, a new message.
  must_append(store, {msg("r", 3), LogEntry{"s1", 3, 4, "new"}});
  EXPECT_EQ(store.snapshot(0)->terms.at("s1"), (std::vector<TermStart>{{1, 1}, {3, 4}}));
}

// A replica that cannot catch up from its primary's log installs the shard's part of a
// copy of the primary's store (docs/REPLICATION.md): the shard's rooms become the
// copy's, its other shards stay, and its log goes on from the copy's position.
TEST(HistoryStore, ACopyInstallsOneShardsRoomsAndLogAndLeavesTheRest) {
  using switchboard::persistence::AddMember;
  using switchboard::persistence::LogEntry;
  using switchboard::persistence::LogPosition;
  using switchboard::persistence::TermStart;
  const auto in_s1 = [](std::string_view room) { return room.substr(0, 1) == "a"; };  // a*: shard s1
  TempDir dir;
  const auto key = switchboard::persistence::StoreKey::generate();
  StoreOptions primary_options = options_in(dir);
  primary_options.dir = dir.path() / "primary";
  primary_options.key = key;
  StoreOptions replica_options = primary_options;
  replica_options.dir = dir.path() / "replica";

  HistoryStore primary = must_open(primary_options);
  must_append(primary, {CreateRoom{"b1", "bo", 1}, msg("b1", 1), LogEntry{"s2", 1, 1, "x"}});
  must_append(primary, {CreateRoom{"a1", "ann", 2, true}, AddMember{"a1", "cy", Role::reader},
                        RemoveMember{"a1", "rex", true}, RemoveMember{"a1", "eve", true, true}, LogEntry{"s1", 1, 1, "1"}});
  must_append(primary, {CreateRoom{"a2", "al", 3}, LogEntry{"s1", 1, 2, "2"}});
  std::vector<Record> a1 = messages("a1", 1, 40);
  a1.push_back(LogEntry{"s1", 2, 3, "3"});
  must_append(primary, a1);
  const fs::path copy = dir.path() / "copy";
  fs::create_directories(copy);
  auto size = primary.copy_to(copy);
  ASSERT_TRUE(size) << size.error().message;
  EXPECT_EQ(*size, fs::file_size(copy / "data.mdb"));
  // Written after the copy: not in it.
  must_append(primary, {msg("a1", 41), LogEntry{"s1", 2, 4, "4"}});

  // The replica: a diverged a1, a room of s1 the primary no longer has, a room of s2.
  HistoryStore replica = must_open(replica_options);
  must_append(replica, {CreateRoom{"z", "zed", 1}, msg("z", 1), LogEntry{"s2", 1, 1, "x"}});
  must_append(replica, {CreateRoom{"a3", "old", 1}, msg("a3", 1), CreateRoom{"a1", "ann", 2, true},
                        AddMember{"a1", "dee", Role::owner}, msg("a1", 1), msg("a1", 2, 5000, "not the primary's"),
                        LogEntry{"s1", 1, 1, "1"}, LogEntry{"s1", 1, 2, "9"}});

  auto installed = replica.install_shard(copy, "s1", in_s1, 1000 + 39);
  ASSERT_TRUE(installed) << installed.error().message;
  EXPECT_EQ(installed->position, (LogPosition{2, 3}));
  EXPECT_EQ(installed->terms, (std::vector<TermStart>{{1, 1}, {2, 3}}));
  EXPECT_EQ(installed->rooms, 2u);
  EXPECT_EQ(installed->messages, 40u);
  EXPECT_EQ(installed->reconciled, 2u) << "a1's seq 2 and a3's seq 1 are not the copy's; a1's seq 1 is";
  auto reconciled = replica.reconciled();
  ASSERT_TRUE(reconciled) << reconciled.error().message;
  EXPECT_EQ(*reconciled, (std::vector<StoredMessage>{msg("a1", 2, 5000, "not the primary's"), msg("a3", 1)}))
      << "kept for an operator, whole";
  // The view: both rooms and a1's member; a1's messages since ts 1039 (39, 40), bodies
  // left out but for the start of the newest one's (a room's summary shows it).
  std::vector<std::uint64_t> view_seqs;
  std::size_t creates = 0, adds = 0, bans = 0;
  for (const auto& r : installed->view) {
    if (const auto* removal = std::get_if<RemoveMember>(&r)) bans += removal->ban && removal->user == "eve" ? 1 : 0;
    if (const auto* m = std::get_if<StoredMessage>(&r)) {
      view_seqs.push_back(m->seq);
      if (m->seq == 40) EXPECT_EQ(m->body, msg("a1", 40).body);
      else EXPECT_TRUE(m->body.empty());
    }
    creates += std::holds_alternative<CreateRoom>(r) ? 1 : 0;
    adds += std::holds_alternative<AddMember>(r) ? 1 : 0;
  }
  EXPECT_EQ(view_seqs, (std::vector<std::uint64_t>{39, 40}));
  EXPECT_EQ(creates, 2u);
  EXPECT_EQ(adds, 1u);
  EXPECT_EQ(bans, 1u) << "chat follows the copy's bans";

  auto history = replica.newest("a1", 100);
  ASSERT_TRUE(history) << history.error().message;
  auto expected = primary.newest("a1", 100);
  expected->messages.pop_back();  // seq 41 came after the copy
  EXPECT_EQ(history->messages, expected->messages) << "a1 is the primary's, opened and sealed again here";
  EXPECT_EQ(code_of(replica.newest("a3", 1)), errc::no_such_room) << "a room of the shard the copy lacks is gone";
  EXPECT_EQ(code_of(replica.newest("b1", 1)), errc::no_such_room) << "another shard's room of the copy is not taken";
  EXPECT_EQ(seqs(*replica.newest("z", 10)), range(1, 1)) << "another shard's room here stays";
  auto snapshot = replica.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->rooms.at("a1").members, (std::map<std::string, Role>{{"cy", Role::reader}}));
  EXPECT_EQ(snapshot->rooms.at("a1").removed, std::set<std::string>{"rex"}) << "removals come with the copy";
  EXPECT_EQ(snapshot->rooms.at("a1").banned, std::set<std::string>{"eve"}) << "bans too";
  EXPECT_TRUE(snapshot->rooms.at("a1").private_room);
  EXPECT_EQ(snapshot->rooms.at("a1").last_seq, 40u);
  EXPECT_EQ(snapshot->logs.at("s1"), (LogPosition{2, 3}));
  EXPECT_EQ(snapshot->logs.at("s2"), (LogPosition{1, 1})) << "another shard's log stays";
  // The log goes on from the copy's position: what came before is not there to read.
  EXPECT_TRUE(replica.log_after("s1", 0, 10, 1 << 20)->trimmed);
  EXPECT_TRUE(replica.log_after("s1", 3, 10, 1 << 20)->entries.empty());
  must_append(replica, {msg("a1", 41), LogEntry{"s1", 2, 4, "4"}});
  EXPECT_EQ(replica.newest("a1", 100)->messages, primary.newest("a1", 100)->messages);

  // A copy sealed with another key, or a replica without one, cannot take it.
  StoreOptions other = replica_options;
  other.dir = dir.path() / "other";
  other.key = switchboard::persistence::StoreKey::generate();
  HistoryStore other_key = must_open(other);
  EXPECT_EQ(code_of(other_key.install_shard(copy, "s1", in_s1, 0)), errc::bad_field);
  other.dir = dir.path() / "clear";
  other.key.reset();
  HistoryStore clear = must_open(other);
  EXPECT_EQ(code_of(clear.install_shard(copy, "s1", in_s1, 0)), errc::bad_field);
  EXPECT_EQ(code_of(clear.install_shard(dir.path() / "none", "s1", in_s1, 0)), errc::unavailable);
}

// --- format 2: a message's value is its message map ----------------------------------

TEST(HistoryStore, AFormatOneStoreMadeByTheEarlierBuildIsBroughtToFormatTwoAndReadsTheSame) {
  // tests/persistence/format1/data.mdb: written by the build before format 2 (`switchboard
  // run` and `post`): room lobby (ann x3, one body in UTF-8, then bob with cmid bob-1),
  // private room staff (ann: s1, s2).
  TempDir dir;
  StoreOptions options = options_in(dir);
  fs::create_directories(options.dir);
  fs::copy_file(fs::path(SWITCHBOARD_SOURCE_DIR) / "tests/persistence/format1/data.mdb", options.dir / "data.mdb");
  const std::string before = raw_get(options, "meta", "format");
  EXPECT_EQ(before, be32(1));
  {
    HistoryStore store = must_open(options);
    auto snapshot = store.snapshot(0);
    ASSERT_TRUE(snapshot) << snapshot.error().message;
    EXPECT_EQ(snapshot->rooms.at("lobby").last_seq, 4u);
    EXPECT_EQ(member_names(snapshot->rooms.at("lobby")), (std::vector<std::string>{"ann", "bob"}));
    EXPECT_TRUE(snapshot->rooms.at("staff").private_room);
    EXPECT_EQ(snapshot->recent.size(), 6u) << "the retry window sees every message";
    auto lobby = store.newest("lobby", 10);
    ASSERT_TRUE(lobby) << lobby.error().message;
    ASSERT_EQ(lobby->messages.size(), 4u);
    EXPECT_EQ(lobby->messages[1].body, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93");
    EXPECT_EQ(lobby->messages[3].user, "bob");
    EXPECT_EQ(lobby->messages[3].client_msg_id, "bob-1");
    auto staff = store.newest("staff", 10);
    ASSERT_TRUE(staff);
    ASSERT_EQ(staff->messages.size(), 2u);
    EXPECT_EQ(staff->messages[1].body, "secret two");
    // It goes on from where it was.
    must_append(store, {StoredMessage{"lobby", 5, "ann", 1, "after", "a5"}});
  }
  EXPECT_EQ(raw_get(options, "meta", "format"), be32(2));
  // Every value is a message map now, the bytes a history page holds.
  HistoryStore store = must_open(options);
  auto page = store.page_maps("lobby", PageQuery{});
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->count, 5u);
  std::string expected;
  auto all = store.newest("lobby", 10);
  ASSERT_TRUE(all);
  for (const auto& m : all->messages)
    expected += encode_message_map(m.room, m.seq, m.user, m.ts_ms, m.body, m.client_msg_id);
  EXPECT_EQ(page->maps, expected);
  EXPECT_EQ(raw_get(options, "messages", std::string("\0\0\0\1", 4) + std::string("\0\0\0\0\0\0\0\2", 8)).substr(0, 1),
            "\x86")
      << "stored as a six-field map";
}

TEST(HistoryStore, APageOfMessageMapsIsTheStoredBytesInOrderWithinItsBounds) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{"r", "ann", 1}});
  must_append(store, messages("r", 1, 20));
  auto seqs_in = [](const MapPage& page) {
    std::vector<std::uint64_t> out;
    std::string_view rest = page.maps;
    for (std::size_t i = 0; i < page.count; ++i) {
      // Each map is one msgpack value: find where it ends by reading it.
      std::size_t offset = 0;
      auto handle = msgpack::unpack(rest.data(), rest.size(), offset);
      auto map = read_message_map(rest.substr(0, offset));
      EXPECT_TRUE(map);
      if (map) out.push_back(map->seq);
      rest.remove_prefix(offset);
    }
    EXPECT_TRUE(rest.empty());
    return out;
  };
  using Mode = PageQuery::Mode;
  auto newest = store.page_maps("r", {Mode::newest, 0, 5});
  EXPECT_EQ(seqs_in(*newest), range(16, 20));
  EXPECT_TRUE(newest->more);
  EXPECT_EQ(seqs_in(*store.page_maps("r", {Mode::before, 6, 10})), range(1, 5));
  auto after = store.page_maps("r", {Mode::after, 17, 10});
  EXPECT_EQ(seqs_in(*after), range(18, 20));
  EXPECT_FALSE(after->more);
  // Nothing past up_to, whichever way: stored, not acknowledged.
  EXPECT_EQ(seqs_in(*store.page_maps("r", {Mode::newest, 0, 5, 12})), range(8, 12));
  auto bounded = store.page_maps("r", {Mode::after, 10, 10, 12});
  EXPECT_EQ(seqs_in(*bounded), range(11, 12));
  EXPECT_FALSE(bounded->more);
  // A byte budget ends the page early (one message at least), from the far end.
  auto small = store.page_maps("r", {Mode::newest, 0, 10, ~std::uint64_t{0}, 1});
  EXPECT_EQ(seqs_in(*small), range(20, 20));
  EXPECT_TRUE(small->more);
  EXPECT_EQ(store.page_maps("nowhere", {}).error().code, errc::no_such_room);
}

namespace {
/// The seqs of a page of message maps, in order (and whether every map read back).
std::vector<std::uint64_t> page_seqs(const MapPage& page) {
  std::vector<std::uint64_t> out;
  std::string_view rest = page.maps;
  for (std::size_t i = 0; i < page.count && !rest.empty(); ++i) {
    std::size_t offset = 0;
    auto handle = msgpack::unpack(rest.data(), rest.size(), offset);
    auto map = read_message_map(rest.substr(0, offset));
    if (!map) return {};
    out.push_back(map->seq);
    rest.remove_prefix(offset);
  }
  return out;
}
}  // namespace

TEST(HistoryStore, AReaderOnAnotherThreadReadsWhatIsCommittedWhileTheWriterCommitsAndTheMapGrows) {
  TempDir dir;
  StoreOptions options = options_in(dir);
  options.initial_map_bytes = kMiB;  // grows five times or more below: LMDB remaps the file each time
  options.max_map_bytes = 256 * kMiB;
  HistoryStore store = must_open(options);
  must_append(store, {CreateRoom{"r", "ann", 1}});
  const HistoryStore::Reader reader = store.reader();
  constexpr std::uint64_t kBatches = 40, kPerBatch = 100;  // 4 KB bodies: 16 MB in all

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> committed{0};  // the last seq the writer saw committed
  std::vector<std::string> problems;
  std::size_t reads = 0;
  std::thread reading([&] {
    std::uint64_t last_seen = 0;
    while (!done.load()) {
      const std::uint64_t at_least = committed.load();
      auto page = reader.page_maps("r", {PageQuery::Mode::newest, 0, 20});
      ++reads;
      if (!page) {
        problems.push_back("read failed: " + page.error().message);
        continue;
      }
      const auto seqs = page_seqs(*page);
      if (seqs.size() != page->count) problems.push_back("a map did not read back");
      if (seqs.empty()) {
        if (at_least > 0) problems.push_back("an empty page after seq " + std::to_string(at_least) + " was committed");
        continue;
      }
      for (std::size_t i = 1; i < seqs.size(); ++i)
        if (seqs[i] != seqs[i - 1] + 1) problems.push_back("a gap in a page");
      // Whole batches only, never older than what was committed when the read began.
      if (seqs.back() % kPerBatch != 0) problems.push_back("part of a batch: " + std::to_string(seqs.back()));
      if (seqs.back() < at_least || seqs.back() < last_seen) problems.push_back("a read went back in time");
      last_seen = seqs.back();
    }
  });
  for (std::uint64_t b = 0; b < kBatches; ++b) {
    must_append(store, big_batch("r", b * kPerBatch + 1, kPerBatch));
    committed.store((b + 1) * kPerBatch);
  }
  done.store(true);
  reading.join();
  EXPECT_GE(store.map_bytes(), 16 * kMiB);  // it did grow, under the reader's feet
  EXPECT_GT(reads, 0u);
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems, the first: " << problems.front();
  auto last = reader.page_maps("r", {PageQuery::Mode::newest, 0, 1});
  ASSERT_TRUE(last);
  EXPECT_EQ(page_seqs(*last), range(kBatches * kPerBatch, kBatches * kPerBatch));
}

TEST(HistoryStore, AReaderReturnsNothingPastWhatIsAcknowledgedAndKnowsRoomsMadeAndDeletedSinceItWasMade) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  const HistoryStore::Reader reader = store.reader();  // made before the rooms are
  must_append(store, {CreateRoom{"r", "ann", 1}});
  must_append(store, messages("r", 1, 20));
  using Mode = PageQuery::Mode;
  // Stored up to 20, acknowledged up to 12 (a replicated shard waiting for its replicas):
  // no read shows 13 and on, whichever way it reads.
  EXPECT_EQ(page_seqs(*reader.page_maps("r", {Mode::newest, 0, 5, 12})), range(8, 12));
  EXPECT_EQ(page_seqs(*reader.page_maps("r", {Mode::before, 15, 5, 12})), range(8, 12));
  auto after = reader.page_maps("r", {Mode::after, 10, 10, 12});
  EXPECT_EQ(page_seqs(*after), range(11, 12));
  EXPECT_FALSE(after->more);
  // A room deleted and made again under its name: the reader reads the new one.
  must_append(store, {DeleteRoom{"r"}});
  EXPECT_EQ(reader.page_maps("r", {}).error().code, errc::no_such_room);
  must_append(store, {CreateRoom{"r", "bob", 2}});
  must_append(store, messages("r", 1, 3));
  EXPECT_EQ(page_seqs(*reader.page_maps("r", {Mode::newest, 0, 10})), range(1, 3));
}

TEST(HistoryStore, AReaderKeepsTheStoreOpenAfterTheStoreObjectIsGone) {
  TempDir dir;
  std::optional<HistoryStore::Reader> reader;
  {
    HistoryStore store = must_open(options_in(dir));
    must_append(store, {CreateRoom{"r", "ann", 1}});
    must_append(store, messages("r", 1, 3));
    reader = store.reader();
  }
  auto page = reader->page_maps("r", {PageQuery::Mode::newest, 0, 10});
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page_seqs(*page), range(1, 3));
}

TEST(HistoryStore, ReadMarkersMoveOnlyForwardSurviveReopenAndGoWithTheirRoom) {
  TempDir dir;
  const StoreOptions options = options_in(dir);
  using switchboard::persistence::MarkRead;
  {
    HistoryStore store = must_open(options);
    must_append(store, {CreateRoom{"alpha", "carol", 111}, AddMember{"alpha", "carol"}, AddMember{"alpha", "bob"},
                        CreateRoom{"beta", "dave", 222}, AddMember{"beta", "dave"}});
    must_append(store, messages("alpha", 1, 6));  // senders user-1, user-2, user-0, ...
    // In one batch: the furthest wins; then an older marker changes nothing.
    must_append(store, {MarkRead{"alpha", "bob", 3}, MarkRead{"alpha", "bob", 5}, MarkRead{"alpha", "bob", 4}});
    must_append(store, {MarkRead{"alpha", "bob", 2}});
    must_append(store, {MarkRead{"nowhere", "bob", 2}});  // a room deleted since: nothing, no failure
    must_append(store, {StoredMessage{"alpha", 7, "carol", 7777, std::string(120, 'q'), "c7"}});
  }
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  const auto& alpha = snapshot->rooms.at("alpha");
  EXPECT_EQ(alpha.read.at("bob"), 5u);
  EXPECT_EQ(alpha.read.at("carol"), 7u) << "the sender of seq 7 has read it";
  EXPECT_EQ(alpha.read.at("user-0"), 6u) << "each sender's newest message";
  EXPECT_EQ(alpha.read.at("user-1"), 4u);
  EXPECT_EQ(alpha.last_ts_ms, 7777u);
  EXPECT_EQ(alpha.last_user, "carol");
  EXPECT_EQ(alpha.preview, std::string(100, 'q'));
  EXPECT_TRUE(snapshot->rooms.at("beta").read.empty());
  EXPECT_EQ(snapshot->rooms.at("beta").last_ts_ms, 0u) << "no message yet";

  // A room deleted and made again under its name starts with no markers.
  must_append(store, {DeleteRoom{"alpha"}, CreateRoom{"alpha", "bob", 333}, AddMember{"alpha", "bob"}});
  snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_TRUE(snapshot->rooms.at("alpha").read.empty());
  // A batch that moves markers in a room and then deletes it is stored, room and all gone.
  must_append(store, {MarkRead{"beta", "dave", 0}, msg("beta", 1), DeleteRoom{"beta"}});
  snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_FALSE(snapshot->rooms.count("beta"));
}

TEST(HistoryStore, MentionsAreKeptUntilTheMarkerPassesThemInClearAndSealedStores) {
  using switchboard::persistence::MarkRead;
  using switchboard::persistence::ReconcileMessage;
  for (bool sealed : {false, true}) {
    SCOPED_TRACE(sealed ? "sealed" : "in clear");
    TempDir dir;
    const StoreOptions options = sealed ? sealed_in(dir, StoreKey::generate()) : options_in(dir);
    auto mentioning = [](std::uint64_t seq, std::string user, std::vector<std::string> names) {
      StoredMessage m{"alpha", seq, std::move(user), 5000 + seq, "hey #" + std::to_string(seq), "m" + std::to_string(seq)};
      m.mentions = std::move(names);
      return m;
    };
    {
      HistoryStore store = must_open(options);
      must_append(store, {CreateRoom{"alpha", "ann", 1}, AddMember{"alpha", "ann"}, AddMember{"alpha", "bob"},
                          AddMember{"alpha", "cat"}});
      // The sender's own name is not counted for them: they have read their message.
      must_append(store, {mentioning(1, "ann", {"bob", "cat", "ann"}), mentioning(2, "ann", {"bob"}),
                          mentioning(3, "cat", {"bob"}), msg("alpha", 4)});
      must_append(store, {MarkRead{"alpha", "cat", 1}});  // passes cat's only mention
      // In one batch, a mention and a marker past it: nothing left for bob of seq 5.
      must_append(store, {mentioning(5, "cat", {"bob"}), MarkRead{"alpha", "bob", 1}});
      must_append(store, {mentioning(6, "ann", {"bob"})});
    }
    HistoryStore store = must_open(options);
    auto snapshot = store.snapshot(0);
    ASSERT_TRUE(snapshot) << snapshot.error().message;
    const auto& alpha = snapshot->rooms.at("alpha");
    using Seqs = std::vector<std::uint64_t>;
    ASSERT_EQ(alpha.mentions.size(), 1u) << "only bob's are unread";
    EXPECT_EQ(alpha.mentions.at("bob"), (Seqs{2, 3, 5, 6}));
    // History carries each message's mentions as it was sent.
    auto page = store.after("alpha", 0, 10);
    ASSERT_TRUE(page) << page.error().message;
    ASSERT_EQ(page->messages.size(), 6u);
    EXPECT_EQ(page->messages[0].mentions, (std::vector<std::string>{"bob", "cat", "ann"}));
    EXPECT_TRUE(page->messages[3].mentions.empty());
    auto maps = store.page_maps("alpha", PageQuery{});
    ASSERT_TRUE(maps);
    EXPECT_NE(maps->maps.find("mentions"), std::string::npos);

    // bob reads up to 5: only 6 is left; taking 6 back (a truncated tail) drops it too.
    must_append(store, {MarkRead{"alpha", "bob", 5}});
    EXPECT_EQ(store.snapshot(0)->rooms.at("alpha").mentions.at("bob"), (Seqs{6}));
    must_append(store, {ReconcileMessage{"alpha", 6}});
    EXPECT_TRUE(store.snapshot(0)->rooms.at("alpha").mentions.empty());
    // A deleted room's mentions go with it.
    must_append(store, {mentioning(6, "ann", {"cat"})});
    EXPECT_EQ(store.snapshot(0)->rooms.at("alpha").mentions.at("cat"), (Seqs{6}));
    must_append(store, {DeleteRoom{"alpha"}, CreateRoom{"alpha", "bob", 9}, AddMember{"alpha", "cat"}});
    EXPECT_TRUE(store.snapshot(0)->rooms.at("alpha").mentions.empty());
  }
}

namespace {

/// Reads a backup stream to its end into `dir`/data.mdb; the error that ended it, if any.
std::optional<switchboard::Error> drain_backup(switchboard::persistence::BackupStream& stream, const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream file(dir / "data.mdb", std::ios::binary);
  std::string chunk;
  for (;;) {
    chunk.clear();
    auto ended = stream.read(chunk, 256 * 1024);
    if (!ended) return ended.error();
    file.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    if (*ended) return std::nullopt;
  }
}

}  // namespace

TEST(HistoryStore, ABackupIsTheStoreAsItWasWhenItBeganWhileWritesGoOn) {
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{"r", "ann", 1}, AddMember{"r", "ann"}});
  for (std::uint64_t first = 1; first <= 2000; first += 400) must_append(store, big_batch("r", first));
  auto stream = store.reader().backup();
  ASSERT_TRUE(stream) << stream.error().message;
  std::string start;
  auto first = (*stream)->read(start, 4096);  // the copy's transaction has begun
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(start.size(), 4096u);
  // Writes go on beside the copy (which waits, unread, on a full socket): nothing blocks.
  for (std::uint64_t first = 2001; first <= 2800; first += 400) must_append(store, big_batch("r", first));
  const fs::path copy = dir.path() / "copy";
  fs::create_directories(copy);
  std::ofstream(copy / "data.mdb", std::ios::binary).write(start.data(), static_cast<std::streamsize>(start.size()));
  {
    std::ofstream rest(copy / "data.mdb", std::ios::binary | std::ios::app);
    std::string chunk;
    for (bool ended = false; !ended;) {
      chunk.clear();
      auto r = (*stream)->read(chunk, 256 * 1024);
      ASSERT_TRUE(r) << r.error().message;
      ended = *r;
      rest.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  EXPECT_EQ((*stream)->offset(), fs::file_size(copy / "data.mdb"));
  EXPECT_LE((*stream)->offset(), store.reader().used_bytes()) << "compacted: no larger than the pages in use";
  stream->reset();

  StoreOptions copy_options;
  copy_options.dir = copy;
  HistoryStore restored = must_open(copy_options);
  auto last = restored.newest("r", 1);
  ASSERT_TRUE(last) << last.error().message;
  ASSERT_EQ(last->messages.size(), 1u);
  EXPECT_EQ(last->messages[0].seq, 2000u) << "what was committed when the backup began, and nothing after";
  auto page = restored.after("r", 0, 2000);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(seqs(*page), range(1, 2000));
  auto original = store.after("r", 0, 2000);
  ASSERT_TRUE(original);
  EXPECT_EQ(page->messages, original->messages);
}

TEST(HistoryStore, GrowingTheMapStopsARunningBackupWhichSaysSoAndTheNextOneIsWhole) {
  TempDir dir;
  StoreOptions options = options_in(dir);
  options.initial_map_bytes = 32 * kMiB;
  options.max_map_bytes = 256 * kMiB;
  HistoryStore store = must_open(options);
  must_append(store, {CreateRoom{"r", "ann", 1}, AddMember{"r", "ann"}});
  std::uint64_t next = 1;
  while (store.reader().used_bytes() < 24 * kMiB) {  // more than the copy's buffers hold
    must_append(store, big_batch("r", next));
    next += 400;
  }
  const std::size_t map_before = store.map_bytes();
  auto stream = store.reader().backup();
  ASSERT_TRUE(stream) << stream.error().message;
  std::string start;
  ASSERT_TRUE((*stream)->read(start, 4096));  // running, and holding the remap lock
  while (store.map_bytes() == map_before) {  // the writer grows the map: it stops the backup, never waits for it
    must_append(store, big_batch("r", next));
    next += 400;
  }
  auto stopped = drain_backup(**stream, dir.path() / "stopped");
  ASSERT_TRUE(stopped) << "a copy whose transaction outlived a remap would read freed memory";
  EXPECT_EQ(stopped->code, errc::unavailable);
  EXPECT_NE(stopped->message.find("map grew"), std::string::npos) << stopped->message;
  stream->reset();

  auto again = store.reader().backup();
  ASSERT_TRUE(again) << again.error().message;
  auto whole = drain_backup(**again, dir.path() / "again");
  ASSERT_FALSE(whole) << whole->message;
  again->reset();
  StoreOptions copy_options;
  copy_options.dir = dir.path() / "again";
  HistoryStore restored = must_open(copy_options);
  auto last = restored.newest("r", 1);
  ASSERT_TRUE(last) << last.error().message;
  ASSERT_EQ(last->messages.size(), 1u);
  EXPECT_EQ(last->messages[0].seq, next - 1);
}

// ---- retention: a room's first seq ------------------------------------------------

TEST(HistoryStore, TrimRoomRemovesTheOldestMessagesAndTheirMentionsAndPagesSayWhereTheRoomStarts) {
  using switchboard::persistence::Retention;
  using switchboard::persistence::SetRetention;
  using switchboard::persistence::TrimRoom;
  TempDir dir;
  const auto options = options_in(dir);
  {
    HistoryStore store = store_with_neighbours(options, 20);  // "mid" 1..20 between "left" and "right"
    StoredMessage mentioning = msg("mid", 21);
    mentioning.mentions = {"zed"};
    StoredMessage later = msg("mid", 22);
    later.mentions = {"zed"};
    must_append(store, {mentioning, later});
    must_append(store, {TrimRoom{"mid", 22}, SetRetention{"mid", Retention{60'000, 5, false}}});
    must_append(store, {TrimRoom{"mid", 10}});  // behind: no-op
    must_append(store, {TrimRoom{"gone", 10}});  // no such room: no-op
    EXPECT_EQ(code_of(store.append_batch(std::vector<Record>{TrimRoom{"mid", 24}})), errc::internal) << "past last seq + 1";

    // after below the first seq: from it, truncated; past it: not.
    auto from_start = store.page_maps("mid", PageQuery{PageQuery::Mode::after, 0, 10});
    ASSERT_TRUE(from_start) << from_start.error().message;
    EXPECT_EQ(from_start->count, 1u);
    EXPECT_EQ(from_start->truncated_at, 22u);
    auto just_before = store.page_maps("mid", PageQuery{PageQuery::Mode::after, 21, 10});
    ASSERT_TRUE(just_before);
    EXPECT_EQ(just_before->count, 1u);
    EXPECT_EQ(just_before->truncated_at, 0u) << "nothing asked for was removed";
    auto newest = store.page_maps("mid", PageQuery{PageQuery::Mode::newest, 0, 10});
    ASSERT_TRUE(newest);
    EXPECT_EQ(newest->count, 1u);
    EXPECT_FALSE(newest->more);
    EXPECT_EQ(newest->truncated_at, 22u) << "the page reached the room's start";
    EXPECT_EQ(seqs(*store.after("mid", 0, 100)), std::vector<std::uint64_t>{22});
    // The neighbours lost nothing.
    EXPECT_EQ(seqs(*store.after("left", 0, 100)).size(), 5u);
    EXPECT_EQ(seqs(*store.after("right", 0, 100)).size(), 5u);
    auto left = store.page_maps("left", PageQuery{PageQuery::Mode::newest, 0, 10});
    ASSERT_TRUE(left);
    EXPECT_EQ(left->truncated_at, 0u);

    auto snapshot = store.snapshot(0);
    ASSERT_TRUE(snapshot);
    const RoomState& mid = snapshot->rooms.at("mid");
    EXPECT_EQ(mid.first_seq, 22u);
    EXPECT_EQ(mid.last_seq, 22u);
    EXPECT_EQ(mid.retention, (Retention{60'000, 5, false}));
    EXPECT_EQ(mid.mentions.at("zed"), std::vector<std::uint64_t>{22}) << "the mention of a removed message went with it";
  }
  // Reopened: the same.
  HistoryStore store = must_open(options);
  auto snapshot = store.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->rooms.at("mid").first_seq, 22u);
  EXPECT_EQ(snapshot->rooms.at("left").first_seq, 1u);
  must_append(store, {TrimRoom{"mid", 23}});  // everything: an empty room that keeps its seqs
  auto empty = store.page_maps("mid", PageQuery{PageQuery::Mode::after, 5, 10});
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->count, 0u);
  EXPECT_EQ(empty->truncated_at, 23u);
  auto reopened = store.snapshot(0);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(reopened->rooms.at("mid").last_seq, 22u);
  must_append(store, {msg("mid", 23)});
  EXPECT_EQ(seqs(*store.after("mid", 0, 100)), std::vector<std::uint64_t>{23});
}

TEST(HistoryStore, TrimmingAcrossManyPagesInStepsKeepsExactlyTheRestAndTheLastRoomOfTheFileCanBeEmptied) {
  using switchboard::persistence::TrimRoom;
  TempDir dir;
  const auto options = options_in(dir);
  HistoryStore store = store_with_neighbours(options, 0);
  for (std::uint64_t first = 1; first <= 3000; first += 500) must_append(store, messages("mid", first, first + 499));
  // Steps as the node takes them, each crossing pages that LMDB then merges.
  for (std::uint64_t to : {1001u, 1002u, 2000u, 2999u}) {
    must_append(store, {TrimRoom{"mid", to}});
    auto rest = store.after("mid", 0, 5000);
    ASSERT_TRUE(rest) << rest.error().message;
    EXPECT_EQ(seqs(*rest), range(to, 3000)) << "trimmed to " << to;
    EXPECT_EQ(seqs(*store.after("left", 0, 100)), range(1, 5));
    EXPECT_EQ(seqs(*store.after("right", 0, 100)), range(1, 5));
  }
  // "right" holds the file's last messages: emptying it leaves the others whole.
  must_append(store, {TrimRoom{"right", 6}});
  EXPECT_TRUE(store.after("right", 0, 100)->messages.empty());
  EXPECT_EQ(seqs(*store.after("mid", 0, 100)), range(2999, 3000));
  must_append(store, {TrimRoom{"mid", 3001}});
  EXPECT_TRUE(store.after("mid", 0, 100)->messages.empty());
  EXPECT_EQ(seqs(*store.after("left", 0, 100)), range(1, 5));
}

TEST(HistoryStore, ARoomThatNeverHeldAMessageMayStartAtAnySeqAndAReaderFindsWhereMessagesStopBeingOld) {
  using switchboard::persistence::TrimRoom;
  TempDir dir;
  HistoryStore store = must_open(options_in(dir));
  must_append(store, {CreateRoom{"imported", "ann", 1}, TrimRoom{"imported", 101}, msg("imported", 101, 5000),
                      msg("imported", 102, 6000), msg("imported", 103, 7000)});
  auto page = store.page_maps("imported", PageQuery{PageQuery::Mode::after, 0, 10});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->count, 3u);
  EXPECT_EQ(page->truncated_at, 101u);
  // A room that held one cannot jump.
  must_append(store, {CreateRoom{"plain", "ann", 1}, msg("plain", 1)});
  EXPECT_EQ(code_of(store.append_batch(std::vector<Record>{TrimRoom{"plain", 50}})), errc::internal);

  auto reader = store.reader();
  auto bound = reader.age_bound("imported", 101, 10, 6000);
  ASSERT_TRUE(bound);
  EXPECT_EQ(bound->seq, 102u);
  EXPECT_EQ(bound->ts_ms, 6000u);
  auto all_old = reader.age_bound("imported", 101, 10, 9000);
  ASSERT_TRUE(all_old);
  EXPECT_EQ(all_old->seq, 104u) << "ran out: past the last";
  EXPECT_EQ(all_old->ts_ms, 0u);
  auto limited = reader.age_bound("imported", 101, 2, 9000);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->seq, 103u) << "looked at two";
  EXPECT_EQ(code_of(reader.age_bound("nowhere", 1, 10, 0)), errc::no_such_room);
}

TEST(HistoryStore, ACopyOfATrimmedRoomInstallsFromItsFirstSeqAndWhatTheReplicaStillHadBelowItIsNotReconciled) {
  using switchboard::persistence::Retention;
  using switchboard::persistence::SetRetention;
  using switchboard::persistence::TrimRoom;
  const auto in_s1 = [](std::string_view) { return true; };
  TempDir dir;
  StoreOptions primary_options = options_in(dir), replica_options = options_in(dir);
  primary_options.dir = dir.path() / "primary";
  replica_options.dir = dir.path() / "replica";
  HistoryStore primary = must_open(primary_options);
  std::vector<Record> batch = {CreateRoom{"a", "ann", 1}};
  for (auto& m : messages("a", 1, 30)) batch.push_back(std::move(m));
  must_append(primary, batch);
  must_append(primary, {TrimRoom{"a", 21}, SetRetention{"a", Retention{0, 10, false}}});
  const fs::path copy = dir.path() / "copy";
  fs::create_directories(copy);
  ASSERT_TRUE(primary.copy_to(copy));

  HistoryStore replica = must_open(replica_options);
  must_append(replica, batch);  // behind: it still holds 1..30
  auto installed = replica.install_shard(copy, "s1", in_s1, 0);
  ASSERT_TRUE(installed) << installed.error().message;
  EXPECT_EQ(installed->messages, 10u);
  EXPECT_EQ(installed->reconciled, 0u) << "1..20 were removed by retention, not taken back";
  EXPECT_EQ(seqs(*replica.after("a", 0, 100)), range(21, 30));
  auto snapshot = replica.snapshot(0);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->rooms.at("a").first_seq, 21u);
  EXPECT_EQ(snapshot->rooms.at("a").last_seq, 30u);
  EXPECT_EQ(snapshot->rooms.at("a").retention.max_messages, 10u);
  bool told = false;
  for (const auto& r : installed->view)
    if (const auto* t = std::get_if<TrimRoom>(&r)) told = t->first_seq == 21;
  EXPECT_TRUE(told) << "chat's view of the room starts at 21 too";
}
