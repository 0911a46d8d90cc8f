// HistoryStore on LMDB.
//
// Layout, format version 2: one environment in StoreOptions::dir, named databases.
//   meta      "format"          -> u32 BE format version
//             "next_room_id"    -> u32 BE id the next new room gets (absent: 1)
//   rooms     room name         -> msgpack [room_id, creator, created_ms, last_seq, private,
//             receipts, first_seq, max_age_ms, max_messages, legal_hold]
//             (fields past the 5th only when one of them is set: receipts alone takes 6;
//             stores made before rooms could be private have no 5th field: public)
//   members   [u32 BE room_id][user bytes]  -> role: "o" owner, "m" member, "r" reader
//             ("" in stores made before roles: the creator is the owner, others members),
//             or "x": not a member, removed by an owner (RemoveMember::remember),
//             or "b": not a member, banned (RemoveMember::ban; stores before bans have none)
//   messages  [u32 BE room_id][u64 BE seq]  -> in a store in clear, the message map
//             (common/message_map.hpp: the bytes a history page holds, as they are);
//             in a sealed store msgpack [user, ts_ms, body, client_msg_id] with body a
//             bin: StoreKey::seal of the body, with the message's key, ts_ms, user and
//             client_msg_id as associated data
//             (format 1 kept [user, ts_ms, body, client_msg_id] in clear too; a store
//             of format 1 is brought to format 2 when it is opened: migrate_to_2)
//             (an entry that is not a plain message: its map has the entry fields,
//             common/message_map.hpp; sealed, they come fifth, as their own msgpack map
//             in a bin, before the mentions)
//   entries   [u32 BE room_id][u64 BE target seq]['e'][u64 BE seq] -> "": an edit of the
//             target; [room_id][target]['r'][key]NUL[user] -> "": a user's reaction to it
//             (a store made before lifecycle entries gets the table empty when opened)
//   meta      "key_fingerprint" -> StoreKey::fingerprint(), in a sealed store only
// Keys are big-endian so LMDB's bytewise order is numeric order: a room's members and
// messages are contiguous, its messages ascending by seq. A store-allocated room id
// keeps message keys at 12 bytes whatever the length of the room's name.
#include "switchboard/persistence/history_store.hpp"

#include "switchboard/common/utf8.hpp"

#include <msgpack.hpp>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <deque>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "switchboard/common/message_map.hpp"
#include "switchboard/common/msgpack_reader.hpp"
#include "switchboard/persistence/data_dir_lock.hpp"
#include "switchboard/persistence/lmdb.hpp"

namespace switchboard::persistence {
namespace {

constexpr std::uint32_t kFormatVersion = 2;
constexpr std::string_view kFormatKey = "format";
constexpr std::string_view kNextRoomIdKey = "next_room_id";
constexpr std::string_view kKeyFingerprintKey = "key_fingerprint";
constexpr unsigned kMaxDbs = 12;  // nine used; the rest for later formats
constexpr std::string_view kLogPositionPrefix = "log/";  // meta: a shard's last (term, lsn)
constexpr std::string_view kTermsPrefix = "terms/";      // meta: a shard's (term, first lsn), oldest first
constexpr std::string_view kVotePrefix = "vote/";        // meta: this node's ShardVote of a shard
constexpr std::string_view kNextReconciledKey = "next_reconciled";
constexpr std::size_t kRoomPrefixSize = 4;
constexpr std::size_t kMessageKeySize = 12;

// --- keys -------------------------------------------------------------------------

void put_be32(char* out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
}
void put_be64(char* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
}
std::uint32_t get_be32(const char* in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}
std::uint64_t get_be64(const char* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

std::string be32(std::uint32_t v) {
  std::string out(4, '\0');
  put_be32(out.data(), v);
  return out;
}

std::string room_prefix(std::uint32_t room_id) { return be32(room_id); }

std::string member_key(std::uint32_t room_id, std::string_view user) {
  std::string key = room_prefix(room_id);
  key.append(user);
  return key;
}

// A mention not read yet: the members key (room id, user), NUL (no name holds one), the
// message's seq; the value is empty.
std::string mention_key(std::uint32_t room_id, std::string_view user, std::uint64_t seq) {
  std::string key = member_key(room_id, user);
  key.push_back('\0');
  key.append(8, '\0');
  put_be64(key.data() + key.size() - 8, seq);
  return key;
}
constexpr std::size_t kMentionTail = 9;  // NUL and the seq
// The seq of a mention key (its last 8 bytes).
std::uint64_t mention_seq(std::string_view key) { return get_be64(key.data() + key.size() - 8); }

std::string message_key(std::uint32_t room_id, std::uint64_t seq) {
  std::string key(kMessageKeySize, '\0');
  put_be32(key.data(), room_id);
  put_be64(key.data() + kRoomPrefixSize, seq);
  return key;
}

// The entries rows of a message (room id, target seq), then 'e' and an edit's seq, 't'
// and the seq of a message in the thread it is the root of, or 'r', a reaction's key,
// NUL (no key holds a control character), the user.
std::string entries_prefix(std::uint32_t room_id, std::uint64_t target) { return message_key(room_id, target); }
constexpr char kEditRow = 'e', kThreadRow = 't';
std::string seq_row(std::uint32_t room_id, std::uint64_t target, char tag, std::uint64_t seq) {
  std::string key = entries_prefix(room_id, target);
  key.push_back(tag);
  key.append(8, '\0');
  put_be64(key.data() + key.size() - 8, seq);
  return key;
}
std::string edit_key(std::uint32_t room_id, std::uint64_t target, std::uint64_t seq) {
  return seq_row(room_id, target, kEditRow, seq);
}
std::string thread_key(std::uint32_t room_id, std::uint64_t root, std::uint64_t seq) {
  return seq_row(room_id, root, kThreadRow, seq);
}
std::string reaction_key(std::uint32_t room_id, std::uint64_t target, std::string_view reaction, std::string_view user) {
  std::string key = entries_prefix(room_id, target);
  key.push_back('r');
  key.append(reaction);
  key.push_back('\0');
  key.append(user);
  return key;
}

bool in_room(std::string_view key, std::uint32_t room_id) {
  return key.size() >= kRoomPrefixSize && get_be32(key.data()) == room_id;
}

// --- values -----------------------------------------------------------------------

struct RoomRecord {
  std::uint32_t id = 0;
  std::string creator;
  std::uint64_t created_ms = 0;
  std::uint64_t last_seq = 0;
  bool private_room = false;
  bool receipts = false;
  std::uint64_t first_seq = 1;
  Retention retention{};
};

constexpr char role_byte(Role role) { return role == Role::owner ? 'o' : role == Role::reader ? 'r' : 'm'; }

// The members value of a user an owner removed: not a member.
constexpr std::string_view kRemovedValue = "x";
// The members value of a banned user: not a member.
constexpr std::string_view kBannedValue = "b";

// A members value; nullopt if it is none of the known ones.
std::optional<Role> read_role_value(std::string_view value, std::string_view user, const RoomRecord& room) {
  if (value.empty()) return user == room.creator ? Role::owner : Role::member;  // before roles
  if (value.size() != 1) return std::nullopt;
  switch (value[0]) {
    case 'o': return Role::owner;
    case 'm': return Role::member;
    case 'r': return Role::reader;
    default: return std::nullopt;
  }
}

std::string_view view(const msgpack::sbuffer& buffer) { return {buffer.data(), buffer.size()}; }

msgpack::sbuffer encode_room(const RoomRecord& room) {
  msgpack::sbuffer buffer(64 + room.creator.size());  // not the 8 KiB default: one per record written
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  // Later fields only when set: records of earlier builds read the same.
  const bool trimmed = room.first_seq != 1 || room.retention != Retention{};
  packer.pack_array(trimmed ? 10 : room.receipts ? 6 : 5);
  packer.pack(room.id);
  packer.pack(room.creator);
  packer.pack(room.created_ms);
  packer.pack(room.last_seq);
  packer.pack(room.private_room);
  if (trimmed || room.receipts) packer.pack(room.receipts);
  if (trimmed) {
    packer.pack(room.first_seq);
    packer.pack(room.retention.max_age_ms);
    packer.pack(room.retention.max_messages);
    packer.pack(room.retention.legal_hold);
  }
  return buffer;
}

/// What a sealed body is bound to: its place (the message's LMDB key) and the fields
/// stored beside it in clear.
std::string associated_data(std::string_view key, std::string_view user, std::uint64_t ts_ms,
                            std::string_view client_msg_id) {
  std::string out(key);
  out.resize(out.size() + 12);
  put_be64(out.data() + key.size(), ts_ms);
  put_be32(out.data() + key.size() + 8, static_cast<std::uint32_t>(user.size()));
  out.append(user);
  out.append(client_msg_id);
  return out;
}

// A message's value: in a store in clear (format 2) its message map, the bytes a history
// page holds; in a sealed store [user, ts_ms, sealed body, client_msg_id], and the
// mentioned users' names as a fifth element when there are any.
std::string encode_message(const StoredMessage& message, std::string_view key, const StoreKey* seal) {
  const bool plain = message.entry.plain();
  if (seal == nullptr)
    return encode_message_map(message.room, message.seq, message.user, message.ts_ms, message.body,
                              message.client_msg_id, message.mentions, plain ? nullptr : &message.entry);
  msgpack::sbuffer buffer(message.body.size() + message.user.size() + message.client_msg_id.size() + 96);
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_array(4 + !plain + !message.mentions.empty());
  packer.pack(message.user);
  packer.pack(message.ts_ms);
  const std::string sealed =
      seal->seal(message.body, associated_data(key, message.user, message.ts_ms, message.client_msg_id));
  packer.pack_bin(static_cast<std::uint32_t>(sealed.size()));
  packer.pack_bin_body(sealed.data(), static_cast<std::uint32_t>(sealed.size()));
  packer.pack(message.client_msg_id);
  if (!plain) {  // in clear, as names and times are
    const std::string entry = encode_entry_fields(message.entry);
    packer.pack_bin(static_cast<std::uint32_t>(entry.size()));
    packer.pack_bin_body(entry.data(), static_cast<std::uint32_t>(entry.size()));
  }
  if (!message.mentions.empty()) packer.pack(message.mentions);  // names stay in clear, as the sender's does
  return std::string(buffer.data(), buffer.size());
}

// Whether a stored value is a message map (format 2, in clear) rather than an array.
bool is_map(std::string_view value) {
  if (value.empty()) return false;
  const auto first = static_cast<unsigned char>(value[0]);
  return (first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf;
}

// Decodes `bytes` as one msgpack array of exactly `fields` scalars (or `min_fields`
// to `fields`, when given) and hands its elements and their count to `read`, which
// converts them (msgpack_as: msgpack::type_error on a wrong type). The limits refuse
// anything but a flat array of at most `fields` before its elements are read; with
// `depth` 2 its last element may be an array (of any size) of scalars. False if
// anything about the value is wrong.
template <class Read>
bool decode_array(std::string_view bytes, std::uint32_t fields, Read&& read, std::uint32_t min_fields = 0,
                  std::size_t depth = 1) {
  try {
    const msgpack::unpack_limit limit(/*array=*/depth > 1 ? bytes.size() : fields, /*map=*/0, /*str=*/bytes.size(),
                                      /*bin=*/bytes.size(), /*ext=*/0, depth);
    MsgpackReader reader;
    if (!reader.read(bytes, limit)) return false;
    const MsgpackNode& array = reader.root();
    if (reader.consumed() != bytes.size() || !array.is(MsgpackType::array) || array.size > fields ||
        array.size < (min_fields != 0 ? min_fields : fields))
      return false;
    // The elements are scalars, one node each (but for an array last, at depth 2).
    for (std::uint32_t i = 0; i + 1 < array.size; ++i)
      if ((&array)[1 + i].extent != 1) return false;
    read(&array + 1, array.size);
    return true;
  } catch (const msgpack::type_error&) {
    return false;
  }
}

Result<RoomRecord> decode_room(std::string_view bytes, std::string_view room) {
  RoomRecord record;
  bool ok = decode_array(
      bytes, 10,
      [&](const MsgpackNode* field, std::uint32_t size) {
        record.id = msgpack_as<std::uint32_t>(field[0]);
        record.creator = msgpack_as<std::string>(field[1]);
        record.created_ms = msgpack_as<std::uint64_t>(field[2]);
        record.last_seq = msgpack_as<std::uint64_t>(field[3]);
        record.private_room = size > 4 && msgpack_as<bool>(field[4]);
        record.receipts = size > 5 && msgpack_as<bool>(field[5]);
        if (size > 6 && size != 10) throw msgpack::type_error();
        if (size == 10) {
          record.first_seq = msgpack_as<std::uint64_t>(field[6]);
          record.retention = {msgpack_as<std::uint64_t>(field[7]), msgpack_as<std::uint64_t>(field[8]),
                              msgpack_as<bool>(field[9])};
        }
      },
      4);
  if (ok && (record.first_seq == 0 || record.first_seq > record.last_seq + 1)) ok = false;
  if (!ok) return make_error(errc::internal, "corrupt record in rooms: room '" + std::string(room) + "'");
  return record;
}

Result<StoredMessage> decode_message(std::string_view key, std::string_view value, const std::string& room,
                                     const StoreKey* seal) {
  if (key.size() != kMessageKeySize)
    return make_error(errc::internal, "corrupt key in messages: room '" + room + "', " +
                                          std::to_string(key.size()) + " bytes");
  StoredMessage message;
  message.room = room;
  message.seq = get_be64(key.data() + kRoomPrefixSize);
  if (is_map(value)) {  // format 2, a store in clear: the message map
    auto map = read_message_map(value);
    if (!map || map->seq != message.seq || map->room != room)
      return make_error(errc::internal, "corrupt record in messages: room '" + room + "' seq " +
                                            std::to_string(message.seq));
    if (seal != nullptr)
      return make_error(errc::internal, "message room '" + room + "' seq " + std::to_string(message.seq) +
                                            " is in clear in a sealed store: it was put there from outside");
    message.user.assign(map->user);
    message.ts_ms = map->ts_ms;
    message.body.assign(map->body);
    message.client_msg_id.assign(map->client_msg_id);
    message.mentions.assign(map->mentions.begin(), map->mentions.end());
    message.entry = std::move(map->entry);
    return message;
  }
  bool sealed = false;
  bool ok = decode_array(
      value, 6,
      [&](const MsgpackNode* field, std::uint32_t size) {
        message.user = msgpack_as<std::string>(field[0]);
        message.ts_ms = msgpack_as<std::uint64_t>(field[1]);
        sealed = field[2].is(MsgpackType::bin);
        message.body = msgpack_as<std::string>(field[2]);  // a str in clear, a bin sealed
        message.client_msg_id = msgpack_as<std::string>(field[3]);
        std::uint32_t next = 4;
        if (size > next && field[next].is(MsgpackType::bin)) {  // the entry fields
          auto entry = read_entry_fields(field[next].view());
          if (!entry) throw msgpack::type_error();
          message.entry = std::move(*entry);
          ++next;
        }
        if (size > next) message.mentions = msgpack_as<std::vector<std::string>>(field[next++]);
        if (size != next) throw msgpack::type_error();
      },
      4, 2);
  const std::string where = "room '" + room + "' seq " + std::to_string(message.seq);
  if (!ok) return make_error(errc::internal, "corrupt record in messages: " + where);
  if (seal == nullptr && sealed)
    return make_error(errc::internal, "message " + where + " is sealed, and this store has no key");
  if (seal != nullptr) {
    // In a sealed store a body in clear can only have been put there from outside.
    auto body = sealed ? seal->open(message.body,
                                    associated_data(key, message.user, message.ts_ms, message.client_msg_id))
                       : std::nullopt;
    if (!body)
      return make_error(errc::internal, "message " + where +
                                            " fails authentication: it was changed or moved after it was stored");
    message.body = std::move(*body);
  }
  return message;
}

// --- errors -----------------------------------------------------------------------

Error lmdb_error(errc code, std::string_view operation, const lmdb::Status& status) {
  return make_error(code, std::string(operation) + ": " + status.message());
}

// MDB_MAP_FULL becomes storage_full (append_batch grows the map and retries on it);
// every other LMDB failure is the store being unavailable.
Error write_error(std::string_view operation, const lmdb::Status& status) {
  return lmdb_error(status.map_full() ? errc::storage_full : errc::unavailable, operation, status);
}

Error no_such_room(const std::string& room) {
  return make_error(errc::no_such_room, "no such room '" + room + "'");
}

// --- replication log ---------------------------------------------------------------

// A log key: the shard's name, a NUL, the big-endian lsn (names hold no NUL).
std::string log_key(std::string_view shard, std::uint64_t lsn) {
  std::string key(shard);
  key.push_back('\0');
  key.resize(key.size() + 8);
  put_be64(key.data() + key.size() - 8, lsn);
  return key;
}
bool in_log(std::string_view key, std::string_view shard) {
  return key.size() == shard.size() + 9 && key.substr(0, shard.size()) == shard && key[shard.size()] == '\0';
}
std::string position_value(const LogPosition& p) {
  std::string v(16, '\0');
  put_be64(v.data(), p.term);
  put_be64(v.data() + 8, p.lsn);
  return v;
}

std::string terms_value(const std::vector<TermStart>& terms) {
  std::string v(terms.size() * 16, '\0');
  for (std::size_t i = 0; i < terms.size(); ++i) {
    put_be64(v.data() + 16 * i, terms[i].term);
    put_be64(v.data() + 16 * i + 8, terms[i].lsn);
  }
  return v;
}
std::optional<std::vector<TermStart>> read_terms(std::string_view v) {
  if (v.size() % 16 != 0) return std::nullopt;
  std::vector<TermStart> terms;
  for (std::size_t i = 0; i < v.size(); i += 16) terms.push_back({get_be64(v.data() + i), get_be64(v.data() + i + 8)});
  return terms;
}
// A vote: the 8-byte term, then voted_for and primary, each ended by a NUL, then for a
// learner the 8-byte lsn it learns until (absent for a voting member).
std::string vote_value(const ShardVote& vote) {
  std::string v(8, '\0');
  put_be64(v.data(), vote.term);
  v.append(vote.voted_for).push_back('\0');
  v.append(vote.primary).push_back('\0');
  if (vote.learner_until > 0) {
    const std::size_t at = v.size();
    v.resize(at + 8);
    put_be64(v.data() + at, vote.learner_until);
  }
  return v;
}
std::optional<ShardVote> read_vote(std::string_view shard, std::string_view v) {
  if (v.size() < 10) return std::nullopt;
  const auto first = v.find('\0', 8);
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = v.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  const std::size_t rest = v.size() - second - 1;
  if (rest != 0 && rest != 8) return std::nullopt;
  return ShardVote{std::string(shard), get_be64(v.data()), std::string(v.substr(8, first - 8)),
                   std::string(v.substr(first + 1, second - first - 1)), rest == 8 ? get_be64(v.data() + second + 1) : 0};
}
// A reconciled message: the room's id, its seq, the room's name (4-byte length first),
// then the message's value as it was stored (sealed ones stay sealed).
std::string reconciled_value(std::uint32_t room_id, std::uint64_t seq, std::string_view room, std::string_view stored) {
  std::string v(16, '\0');
  put_be32(v.data(), room_id);
  put_be64(v.data() + 4, seq);
  put_be32(v.data() + 12, static_cast<std::uint32_t>(room.size()));
  v.append(room).append(stored);
  return v;
}

// --- append_batch -------------------------------------------------------------------

struct Tables {
  // reads: a user's read marker in a room, under the members key (room id, user): the
  // seq, 8 bytes big-endian. mentions: the mentions past a user's marker (mention_key),
  // dropped as it passes them.
  lmdb::Dbi meta, rooms, members, messages, log, reconciled, reads, mentions, entries;
  std::size_t max_key = 0;         // LMDB's key size limit
  const StoreKey* seal = nullptr;  // set: bodies are sealed with it
};

// Applies the records of one batch inside one write transaction. Room records are
// read once, changed in memory and written back once by finish().
class BatchWriter {
 public:
  BatchWriter(const Tables& tables, lmdb::WriteTxn& txn) : tables_(tables), txn_(txn) {}

  Result<void> operator()(const CreateRoom& create) {
    if (create.room.empty()) return make_error(errc::bad_field, "append_batch: empty room name");
    if (create.room.size() > tables_.max_key)
      return make_error(errc::too_large, "append_batch: room name of " +
                                             std::to_string(create.room.size()) +
                                             " bytes is over the store's limit of " +
                                             std::to_string(tables_.max_key));
    auto room = load(create.room);
    if (!room) return room.error();
    if ((*room)->exists) return {};  // creating an existing room is a no-op
    auto id = allocate_room_id();
    if (!id) return id.error();
    **room = PendingRoom{RoomRecord{*id, create.creator, create.ts_ms, 0, create.private_room}, true, true, true};
    return {};
  }

  Result<void> operator()(const DeleteRoom& remove) {
    auto room = load(remove.room);
    if (!room) return room.error();
    PendingRoom& pending = **room;
    if (!pending.exists) return {};  // deleting a room that does not exist is a no-op
    // Its members, markers and messages are contiguous under its id: delete them by prefix.
    const std::string prefix = room_prefix(pending.record.id);
    for (auto it = reads_.lower_bound(prefix); it != reads_.end() && in_room(it->first, pending.record.id);)
      it = reads_.erase(it);
    for (lmdb::Dbi dbi : {tables_.members, tables_.reads, tables_.mentions, tables_.messages, tables_.entries}) {
      auto cursor = txn_.cursor(dbi);
      if (!cursor) return write_error("append_batch", cursor.error());
      for (auto at = cursor->seek(prefix); at && in_room(at->key, pending.record.id); at = cursor->seek(prefix))
        if (lmdb::Status del = txn_.del(dbi, std::string(at->key)); !del.ok())
          return write_error("append_batch", del);
    }
    pending.exists = false;
    pending.deleted = true;
    pending.created = false;
    pending.dirty = false;
    return {};
  }

  Result<void> operator()(const AddMember& add) {
    auto key = member_key_of(add);
    if (!key) return key.error();
    const char role = role_byte(add.role);
    lmdb::Status put = txn_.put(tables_.members, *key, std::string_view(&role, 1));
    if (put.ok()) return {};
    return write_error("append_batch", put);
  }

  Result<void> operator()(const RemoveMember& remove) {
    auto room = load(remove.room);
    if (!room) return room.error();
    if (!(*room)->exists) return {};  // nobody is a member of a room that does not exist
    if (remove.user.size() + kRoomPrefixSize > tables_.max_key) return {};  // cannot be a member
    if (remove.remember || remove.ban) {
      if (lmdb::Status put = txn_.put(tables_.members, member_key((*room)->record.id, remove.user),
                                      remove.ban ? kBannedValue : kRemovedValue);
          !put.ok())
        return write_error("append_batch", put);
      return {};
    }
    lmdb::Status del = txn_.del(tables_.members, member_key((*room)->record.id, remove.user));
    if (del.ok() || del.not_found()) return {};  // removing a non-member is a no-op
    return write_error("append_batch", del);
  }

  Result<void> operator()(const LogEntry& entry) {
    auto position = log_position(entry.shard);
    if (!position) return position.error();
    if (entry.lsn != (*position)->lsn + 1)
      return make_error(errc::internal, "append_batch: log of shard '" + entry.shard + "': lsn " +
                                            std::to_string(entry.lsn) + " is not last lsn " +
                                            std::to_string((*position)->lsn) + " + 1");
    std::string value(8, '\0');
    put_be64(value.data(), entry.term);
    value += entry.body;
    if (lmdb::Status put = txn_.put(tables_.log, log_key(entry.shard, entry.lsn), value); !put.ok())
      return write_error("append_batch", put);
    auto terms = log_terms(entry.shard, **position);
    if (!terms) return terms.error();
    if ((*terms)->empty() || (*terms)->back().term != entry.term) (*terms)->push_back({entry.term, entry.lsn});
    **position = LogPosition{entry.term, entry.lsn};
    return {};
  }

  Result<void> operator()(const TruncateLog& truncate) {
    auto position = log_position(truncate.shard);
    if (!position) return position.error();
    if (truncate.lsn > (*position)->lsn)
      return make_error(errc::internal, "append_batch: log of shard '" + truncate.shard + "': truncating after lsn " +
                                            std::to_string(truncate.lsn) + ", past its last lsn " +
                                            std::to_string((*position)->lsn));
    auto terms = log_terms(truncate.shard, **position);
    if (!terms) return terms.error();
    auto cursor = txn_.cursor(tables_.log);
    if (!cursor) return write_error("append_batch", cursor.error());
    for (auto at = cursor->seek(log_key(truncate.shard, truncate.lsn + 1)); at && in_log(at->key, truncate.shard);
         at = cursor->seek(log_key(truncate.shard, truncate.lsn + 1)))
      if (lmdb::Status del = txn_.del(tables_.log, std::string(at->key)); !del.ok())
        return write_error("append_batch", del);
    auto& starts = **terms;
    while (!starts.empty() && starts.back().lsn > truncate.lsn) starts.pop_back();
    **position = LogPosition{starts.empty() || truncate.lsn == 0 ? 0 : starts.back().term, truncate.lsn};
    return {};
  }

  Result<void> operator()(const ShardVote& vote) {
    if (lmdb::Status put = txn_.put(tables_.meta, std::string(kVotePrefix) + vote.shard, vote_value(vote)); !put.ok())
      return write_error("append_batch", put);
    return {};
  }

  Result<void> operator()(const ReconcileMessage& reconcile) {
    auto room = load(reconcile.room);
    if (!room) return room.error();
    PendingRoom& pending = **room;
    if (!pending.exists || reconcile.seq == 0 || reconcile.seq != pending.record.last_seq)
      return make_error(errc::internal, "append_batch: reconciling seq " + std::to_string(reconcile.seq) + " of room '" +
                                            reconcile.room + "', which is not its last message");
    const std::string key = message_key(pending.record.id, reconcile.seq);
    auto stored = txn_.get(tables_.messages, key);
    if (!stored) return write_error("append_batch", stored.error());
    const std::string value = reconciled_value(pending.record.id, reconcile.seq, reconcile.room, *stored);
    auto next = next_reconciled();
    if (!next) return next.error();
    if (lmdb::Status put = txn_.put(tables_.reconciled, be64_key(*next), value); !put.ok())
      return write_error("append_batch", put);
    if (lmdb::Status del = txn_.del(tables_.messages, key); !del.ok()) return write_error("append_batch", del);
    // Its mentions go with it (a later message takes its seq).
    auto mentions = txn_.cursor(tables_.mentions);
    if (!mentions) return write_error("append_batch", mentions.error());
    std::vector<std::string> gone;
    const std::string prefix = room_prefix(pending.record.id);
    for (auto at = mentions->seek(prefix); at && in_room(at->key, pending.record.id); at = mentions->get(MDB_NEXT))
      if (at->key.size() >= kRoomPrefixSize + kMentionTail && mention_seq(at->key) == reconcile.seq)
        gone.emplace_back(at->key);
    for (const auto& k : gone)
      if (lmdb::Status del = txn_.del(tables_.mentions, k); !del.ok()) return write_error("append_batch", del);
    pending.record.last_seq = reconcile.seq - 1;
    pending.dirty = true;
    return {};
  }

  Result<void> operator()(const TrimLog& trim) {
    auto cursor = txn_.cursor(tables_.log);
    if (!cursor) return write_error("append_batch", cursor.error());
    for (auto at = cursor->seek(log_key(trim.shard, 0));
         at && in_log(at->key, trim.shard) && get_be64(at->key.data() + trim.shard.size() + 1) <= trim.lsn;
         at = cursor->seek(log_key(trim.shard, 0)))
      if (lmdb::Status del = txn_.del(tables_.log, std::string(at->key)); !del.ok())
        return write_error("append_batch", del);
    return {};
  }

  Result<void> operator()(const StoredMessage& message) {
    auto room = load(message.room);
    if (!room) return room.error();
    PendingRoom& pending = **room;
    if (!pending.exists)
      return make_error(errc::internal, "append_batch: message seq " + std::to_string(message.seq) +
                                            " for unknown room '" + message.room + "'");
    if (message.seq != pending.record.last_seq + 1)
      return make_error(errc::internal, "append_batch: room '" + message.room + "': seq " +
                                            std::to_string(message.seq) + " is not last seq " +
                                            std::to_string(pending.record.last_seq) + " + 1");
    const std::string key = message_key(pending.record.id, message.seq);
    // The sender's message map goes in as it is; otherwise it is made here.
    std::string made;
    if (tables_.seal != nullptr || message.wire.empty()) made = encode_message(message, key, tables_.seal);
    const std::string_view value = made.empty() ? std::string_view(message.wire) : std::string_view(made);
    lmdb::Status put = txn_.put(tables_.messages, key, value, MDB_NOOVERWRITE);
    if (put.code == MDB_KEYEXIST)
      return make_error(errc::internal, "append_batch: room '" + message.room + "' seq " +
                                            std::to_string(message.seq) +
                                            " is stored already though last seq is " +
                                            std::to_string(pending.record.last_seq));
    if (!put.ok()) return write_error("append_batch", put);
    pending.record.last_seq = message.seq;
    pending.dirty = true;
    for (const auto& user : message.mentions)  // counted for each until their marker passes it
      if (user != message.user && user.size() + kRoomPrefixSize + kMentionTail <= tables_.max_key) {
        if (lmdb::Status put = txn_.put(tables_.mentions, mention_key(pending.record.id, user, message.seq), {});
            !put.ok())
          return write_error("append_batch", put);
        any_mentions_ = true;
      }
    note_read(pending.record.id, message.user, message.seq);  // the sender has read their own message
    if (copying_) return {};  // a copy's targets come as the copy has them
    if (message.entry.kind != EntryKind::message) return apply_entry(pending.record.id, message, key);
    if (message.entry.thread != 0) return apply_reply(pending.record.id, message);
    return {};
  }

  /// The id of a room this batch has (created or loaded).
  Result<std::uint32_t> room_id_of(const std::string& name) {
    auto room = load(name);
    if (!room) return room.error();
    if (!(*room)->exists) return make_error(errc::internal, "no room '" + name + "' in this batch");
    return (*room)->record.id;
  }

  /// Installing a copy: its entries come with their targets as the copy has them, so
  /// storing one changes nothing else (the entries table is copied as it is).
  void copying(bool on) { copying_ = on; }

  Result<void> operator()(const SetReceipts& set) {
    auto room = load(set.room);
    if (!room) return room.error();
    if (!(*room)->exists || (*room)->record.receipts == set.receipts) return {};
    (*room)->record.receipts = set.receipts;
    (*room)->dirty = true;
    return {};
  }

  Result<void> operator()(const SetRetention& set) {
    auto room = load(set.room);
    if (!room) return room.error();
    if (!(*room)->exists || (*room)->record.retention == set.retention) return {};
    (*room)->record.retention = set.retention;
    (*room)->dirty = true;
    return {};
  }

  Result<void> operator()(const TrimRoom& trim) {
    auto room = load(trim.room);
    if (!room) return room.error();
    PendingRoom& pending = **room;
    RoomRecord& record = pending.record;
    if (!pending.exists || trim.first_seq <= record.first_seq) return {};  // deleted since, or trimmed there already
    const bool never_held = record.last_seq == 0 && record.first_seq == 1;
    if (trim.first_seq > record.last_seq + 1 && !never_held)
      return make_error(errc::internal, "append_batch: room '" + trim.room + "': first seq " +
                                            std::to_string(trim.first_seq) + " is past last seq " +
                                            std::to_string(record.last_seq) + " + 1");
    if (never_held) record.last_seq = trim.first_seq - 1;  // an import starts there
    // Its messages below the new first seq are contiguous: delete them from the newest
    // down. A page's entries lie in it in the order they were appended, newest lowest,
    // so taking the newest first leaves LMDB nothing to shift (from the oldest, every
    // delete moved the rest of its page: memmove was 12% of a trim's profile).
    // (After mdb_cursor_del the cursor is at the entry that followed: MDB_PREV reads
    // the one before the deleted one.)
    auto cursor = txn_.cursor(tables_.messages);
    if (!cursor) return write_error("append_batch", cursor.error());
    auto at = cursor->seek(message_key(record.id, trim.first_seq));
    if (at) at = cursor->get(MDB_PREV);
    else if (at.error().not_found()) at = cursor->get(MDB_LAST);  // nothing after it at all
    for (; at && in_room(at->key, record.id); at = cursor->get(MDB_PREV))
      if (lmdb::Status del = cursor->del(); !del.ok()) return write_error("append_batch", del);
    if (!at && !at.error().not_found()) return write_error("append_batch", at.error());
    // And the mentions of those messages (a user's mentions are few: read them all).
    auto mentions = txn_.cursor(tables_.mentions);
    if (!mentions) return write_error("append_batch", mentions.error());
    std::vector<std::string> gone;
    const std::string prefix = room_prefix(record.id);
    for (auto at = mentions->seek(prefix); at && in_room(at->key, record.id); at = mentions->get(MDB_NEXT))
      if (at->key.size() >= kRoomPrefixSize + kMentionTail && mention_seq(at->key) < trim.first_seq)
        gone.emplace_back(at->key);
    for (const auto& k : gone)
      if (lmdb::Status del = txn_.del(tables_.mentions, k); !del.ok()) return write_error("append_batch", del);
    // And the edits and reactions rows of those messages (keyed by target: contiguous).
    auto entries = txn_.cursor(tables_.entries);
    if (!entries) return write_error("append_batch", entries.error());
    const std::string end = message_key(record.id, trim.first_seq);
    for (auto at = entries->seek(prefix); at && at->key < std::string_view(end); at = entries->seek(prefix))
      if (lmdb::Status del = entries->del(); !del.ok()) return write_error("append_batch", del);
    record.first_seq = trim.first_seq;
    pending.dirty = true;
    return {};
  }

  Result<void> operator()(const MarkRead& mark) {
    auto room = load(mark.room);
    if (!room) return room.error();
    if (!(*room)->exists) return {};  // a room deleted since: nobody reads it
    note_read((*room)->record.id, mark.user, mark.seq);
    return {};
  }

  /// Keeps a stored message (its value as stored, under room id `room_id`) in the
  /// reconciled table; the message itself goes with its room.
  Result<void> keep_reconciled(std::uint32_t room_id, std::uint64_t seq, std::string_view room, std::string_view stored) {
    auto next = next_reconciled();
    if (!next) return next.error();
    if (lmdb::Status put = txn_.put(tables_.reconciled, be64_key(*next), reconciled_value(room_id, seq, room, stored));
        !put.ok())
      return write_error("install", put);
    return {};
  }

  /// Drops every entry of the shard's log and sets its position and terms (a replica
  /// installing a copy of its primary's store).
  Result<void> reset_log(const std::string& shard, const LogPosition& position, std::vector<TermStart> terms) {
    auto cursor = txn_.cursor(tables_.log);
    if (!cursor) return write_error("install", cursor.error());
    for (auto at = cursor->seek(log_key(shard, 0)); at && in_log(at->key, shard); at = cursor->seek(log_key(shard, 0)))
      if (lmdb::Status del = txn_.del(tables_.log, std::string(at->key)); !del.ok()) return write_error("install", del);
    logs_[shard] = position;
    terms_[shard] = std::move(terms);
    return {};
  }

  /// Writes back the changed room records, the read markers that moved forward (and
  /// drops the mentions they passed) and the room id counter.
  Result<void> finish() {
    if (!reads_.empty() && !any_mentions_) {  // most stores have no unread mention: one look
      auto mentions = txn_.cursor(tables_.mentions);
      if (!mentions) return write_error("append_batch", mentions.error());
      auto first = mentions->get(MDB_FIRST);
      if (!first && !first.error().not_found()) return write_error("append_batch", first.error());
      any_mentions_ = static_cast<bool>(first);
    }
    for (const auto& [key, seq] : reads_) {
      auto stored = txn_.get(tables_.reads, key);
      if (stored && stored->size() == 8 && get_be64(stored->data()) >= seq) continue;  // never back
      if (!stored && !stored.error().not_found()) return write_error("append_batch", stored.error());
      if (lmdb::Status put = txn_.put(tables_.reads, key, be64_key(seq)); !put.ok()) return write_error("append_batch", put);
      if (any_mentions_)
        if (auto passed = drop_mentions(key, seq); !passed) return passed;
    }
    for (const auto& [name, room] : rooms_) {
      if (room.deleted && !room.exists) {
        lmdb::Status del = txn_.del(tables_.rooms, name);
        if (!del.ok() && !del.not_found()) return write_error("append_batch", del);
        continue;
      }
      if (!room.dirty) continue;
      msgpack::sbuffer value = encode_room(room.record);
      if (lmdb::Status put = txn_.put(tables_.rooms, name, view(value)); !put.ok())
        return write_error("append_batch", put);
    }
    for (const auto& [shard, position] : logs_)
      if (lmdb::Status put = txn_.put(tables_.meta, std::string(kLogPositionPrefix) + shard, position_value(position));
          !put.ok())
        return write_error("append_batch", put);
    for (const auto& [shard, terms] : terms_)
      if (lmdb::Status put = txn_.put(tables_.meta, std::string(kTermsPrefix) + shard, terms_value(terms)); !put.ok())
        return write_error("append_batch", put);
    if (next_reconciled_)
      if (lmdb::Status put = txn_.put(tables_.meta, kNextReconciledKey, be64_key(*next_reconciled_)); !put.ok())
        return write_error("append_batch", put);
    if (next_room_id_ && *next_room_id_ != first_free_id_) {
      if (lmdb::Status put = txn_.put(tables_.meta, kNextRoomIdKey, be32(*next_room_id_)); !put.ok())
        return write_error("append_batch", put);
    }
    return {};
  }

  /// Rooms this batch created, for the name -> id cache once the batch is committed.
  std::vector<std::pair<std::string, std::uint32_t>> created() const {
    std::vector<std::pair<std::string, std::uint32_t>> out;
    for (const auto& [name, room] : rooms_)
      if (room.created) out.emplace_back(name, room.record.id);
    return out;
  }
  /// Rooms this batch deleted (and did not create again), likewise.
  std::vector<std::string> deleted() const {
    std::vector<std::string> out;
    for (const auto& [name, room] : rooms_)
      if (room.deleted && !room.exists) out.push_back(name);
    return out;
  }

 private:
  struct PendingRoom {
    RoomRecord record;
    bool exists = false;
    bool dirty = false;    // record changed by this batch
    bool created = false;  // created by this batch
    bool deleted = false;  // deleted by this batch (it may create it again after)
  };

  // A message in a thread: its root counts it (replies, last_reply, repliers), and a
  // row under the root lists it, for history to page the thread.
  Result<void> apply_reply(std::uint32_t room_id, const StoredMessage& reply) {
    const std::string root_key = message_key(room_id, reply.entry.thread);
    auto found = read_stored(root_key, reply.room);
    if (!found) return found.error();
    if (!*found || (*found)->entry.kind != EntryKind::message || (*found)->entry.thread != 0) return {};  // trimmed
    if (lmdb::Status put = txn_.put(tables_.entries, thread_key(room_id, reply.entry.thread, reply.seq), {}); !put.ok())
      return write_error("append_batch", put);
    EntryFields& root = (*found)->entry;
    ++root.replies;
    root.last_reply = std::max(root.last_reply, reply.seq);
    if (root.repliers.size() < kMaxRepliers && std::find(root.repliers.begin(), root.repliers.end(), reply.user) == root.repliers.end())
      root.repliers.push_back(reply.user);
    if (lmdb::Status put = txn_.put(tables_.messages, root_key, encode_message(**found, root_key, tables_.seal)); !put.ok())
      return write_error("append_batch", put);
    return {};
  }

  // A lifecycle entry (stored under `entry_key`) changes its target (StoredMessage).
  Result<void> apply_entry(std::uint32_t room_id, const StoredMessage& entry, const std::string& entry_key) {
    const std::string target_key = message_key(room_id, entry.entry.target);
    auto found = read_stored(target_key, entry.room);
    if (!found) return found.error();
    if (!*found || (*found)->entry.kind != EntryKind::message) return {};  // trimmed, or not a message
    StoredMessage& target = **found;
    EntryFields& state = target.entry;
    switch (entry.entry.kind) {
      case EntryKind::message:
        return {};
      case EntryKind::edit:
        if (state.deleted) return erase(entry_key, entry.room);  // a deleted message's edit keeps no body
        target.body = entry.body;
        state.edited_ts = entry.ts_ms;
        if (lmdb::Status put = txn_.put(tables_.entries, edit_key(room_id, target.seq, entry.seq), {}); !put.ok())
          return write_error("append_batch", put);
        break;
      case EntryKind::remove: {
        if (state.deleted) return {};
        // Its edits' bodies go too, and its rows (edits, reactions).
        const std::string prefix = entries_prefix(room_id, target.seq);
        std::vector<std::string> rows;
        auto cursor = txn_.cursor(tables_.entries);
        if (!cursor) return write_error("append_batch", cursor.error());
        for (auto at = cursor->seek(prefix); at && at->key.starts_with(prefix); at = cursor->get(MDB_NEXT))
          rows.emplace_back(at->key);
        for (const auto& row : rows) {
          const bool seq_row = row.size() == prefix.size() + 9;
          if (seq_row && row[prefix.size()] == kThreadRow) continue;  // its thread stays
          if (seq_row && row[prefix.size()] == kEditRow)
            if (auto erased = erase(message_key(room_id, get_be64(row.data() + prefix.size() + 1)), entry.room); !erased)
              return erased;
          if (lmdb::Status del = txn_.del(tables_.entries, row); !del.ok()) return write_error("append_batch", del);
        }
        for (const auto& user : target.mentions)  // no longer counted for anyone
          if (lmdb::Status del = txn_.del(tables_.mentions, mention_key(room_id, user, target.seq));
              !del.ok() && !del.not_found())
            return write_error("append_batch", del);
        target.body.clear();
        target.mentions.clear();
        EntryFields tombstone;  // where it stood stays: what it answered, its thread, the thread it is in
        tombstone.deleted = true;
        tombstone.reply_to = state.reply_to;
        tombstone.thread = state.thread;
        tombstone.replies = state.replies;
        tombstone.last_reply = state.last_reply;
        tombstone.repliers = std::move(state.repliers);
        state = std::move(tombstone);
        break;
      }
      case EntryKind::react: {
        if (state.deleted) return {};
        const std::string row = reaction_key(room_id, target.seq, entry.entry.key, entry.user);
        if (row.size() > tables_.max_key) return {};  // a name too long to be a key: no reaction
        auto had = txn_.get(tables_.entries, row);
        if (!had && !had.error().not_found()) return write_error("append_batch", had.error());
        if (static_cast<bool>(had) == entry.entry.on) return {};  // as it was already
        auto at = std::lower_bound(state.reactions.begin(), state.reactions.end(), entry.entry.key,
                                   [](const Reaction& r, const std::string& k) { return r.key < k; });
        if (entry.entry.on) {
          if (lmdb::Status put = txn_.put(tables_.entries, row, {}); !put.ok()) return write_error("append_batch", put);
          if (at == state.reactions.end() || at->key != entry.entry.key) at = state.reactions.insert(at, {entry.entry.key, 0});
          ++at->count;
        } else {
          if (lmdb::Status del = txn_.del(tables_.entries, row); !del.ok()) return write_error("append_batch", del);
          if (at != state.reactions.end() && at->key == entry.entry.key && --at->count == 0) state.reactions.erase(at);
        }
        break;
      }
    }
    if (lmdb::Status put = txn_.put(tables_.messages, target_key, encode_message(target, target_key, tables_.seal));
        !put.ok())
      return write_error("append_batch", put);
    return {};
  }

  // The entry stored under `key` (of room `room`) as this transaction sees it: nullopt if none.
  Result<std::optional<StoredMessage>> read_stored(const std::string& key, const std::string& room) {
    auto value = txn_.get(tables_.messages, key);
    if (!value) {
      if (value.error().not_found()) return std::optional<StoredMessage>{};
      return write_error("append_batch", value.error());
    }
    auto message = decode_message(key, *value, room, tables_.seal);
    if (!message) return message.error();
    return std::optional<StoredMessage>(std::move(*message));
  }

  // Erases the body of the entry under `key` (an edit of a deleted message).
  Result<void> erase(const std::string& key, const std::string& room) {
    auto found = read_stored(key, room);
    if (!found) return found.error();
    if (!*found) return {};
    StoredMessage& m = **found;
    m.body.clear();
    m.entry.deleted = true;
    if (lmdb::Status put = txn_.put(tables_.messages, key, encode_message(m, key, tables_.seal)); !put.ok())
      return write_error("append_batch", put);
    return {};
  }

  // Drops the mentions of the user of members key `member` up to `seq` (read now).
  Result<void> drop_mentions(const std::string& member, std::uint64_t seq) {
    std::string from = member;
    from.push_back('\0');
    auto cursor = txn_.cursor(tables_.mentions);
    if (!cursor) return write_error("append_batch", cursor.error());
    std::vector<std::string> passed;
    for (auto at = cursor->seek(from); at; at = cursor->get(MDB_NEXT)) {
      if (at->key.size() != from.size() + 8 || !at->key.starts_with(from) || mention_seq(at->key) > seq)
        break;
      passed.emplace_back(at->key);
    }
    for (const auto& k : passed)
      if (lmdb::Status del = txn_.del(tables_.mentions, k); !del.ok()) return write_error("append_batch", del);
    return {};
  }

  // A read marker this batch moves (the furthest of its records; finish() writes it if it
  // is past the stored one). A user name too long to be a key has none.
  void note_read(std::uint32_t room_id, std::string_view user, std::uint64_t seq) {
    if (user.empty() || user.size() + kRoomPrefixSize > tables_.max_key) return;
    auto [it, fresh] = reads_.try_emplace(member_key(room_id, user), seq);
    if (!fresh) it->second = std::max(it->second, seq);
  }

  // The room as this batch sees it: stored state plus the batch's earlier records.
  Result<PendingRoom*> load(const std::string& name) {
    if (auto it = rooms_.find(name); it != rooms_.end()) return &it->second;
    PendingRoom room;
    if (!name.empty() && name.size() <= tables_.max_key) {  // else it cannot be stored
      auto value = txn_.get(tables_.rooms, name);
      if (value) {
        auto record = decode_room(*value, name);
        if (!record) return record.error();
        room.record = std::move(*record);
        room.exists = true;
      } else if (!value.error().not_found()) {
        return lmdb_error(errc::unavailable, "append_batch", value.error());
      }
    }
    return &rooms_.emplace(name, std::move(room)).first->second;
  }

  // The members key of an AddMember, once its names and its room are checked.
  Result<std::string> member_key_of(const AddMember& add) {
    if (add.user.empty()) return make_error(errc::bad_field, "append_batch: add member: empty user name");
    if (add.user.size() + kRoomPrefixSize > tables_.max_key)
      return make_error(errc::too_large, "append_batch: add member: user name of " +
                                             std::to_string(add.user.size()) +
                                             " bytes is over the store's limit of " +
                                             std::to_string(tables_.max_key - kRoomPrefixSize));
    auto room = load(add.room);
    if (!room) return room.error();
    if (!(*room)->exists)
      return make_error(errc::internal, "append_batch: add member '" + add.user +
                                            "' to unknown room '" + add.room + "'");
    return member_key((*room)->record.id, add.user);
  }

  // A meta value as this transaction sees it; nullopt when there is none.
  Result<std::optional<std::string_view>> meta(std::string_view key) {
    auto stored = txn_.get(tables_.meta, key);
    if (stored) return std::optional<std::string_view>(*stored);
    if (stored.error().not_found()) return std::optional<std::string_view>();
    return lmdb_error(errc::unavailable, "append_batch", stored.error());
  }

  // The shard's log position as this batch sees it.
  Result<LogPosition*> log_position(const std::string& shard) {
    if (auto it = logs_.find(shard); it != logs_.end()) return &it->second;
    auto stored = meta(std::string(kLogPositionPrefix) + shard);
    if (!stored) return stored.error();
    LogPosition position;
    if (*stored) {
      if ((*stored)->size() != 16) return make_error(errc::internal, "corrupt record in meta: log of shard '" + shard + "'");
      position = {get_be64((*stored)->data()), get_be64((*stored)->data() + 8)};
    }
    return &logs_.emplace(shard, position).first->second;
  }

  // The shard's terms as this batch sees them. A log written before terms were kept
  // (every entry of term 1) reads as one term from lsn 1.
  Result<std::vector<TermStart>*> log_terms(const std::string& shard, const LogPosition& position) {
    if (auto it = terms_.find(shard); it != terms_.end()) return &it->second;
    auto stored = meta(std::string(kTermsPrefix) + shard);
    if (!stored) return stored.error();
    std::vector<TermStart> terms;
    if (*stored) {
      auto read = read_terms(**stored);
      if (!read) return make_error(errc::internal, "corrupt record in meta: terms of shard '" + shard + "'");
      terms = std::move(*read);
    } else if (position.lsn > 0) {
      terms.push_back({position.term, 1});
    }
    return &terms_.emplace(shard, std::move(terms)).first->second;
  }

  Result<std::uint64_t> next_reconciled() {
    if (!next_reconciled_) {
      auto stored = meta(kNextReconciledKey);
      if (!stored) return stored.error();
      next_reconciled_ = *stored && (*stored)->size() == 8 ? get_be64((*stored)->data()) : 1;
    }
    return (*next_reconciled_)++;
  }
  static std::string be64_key(std::uint64_t v) {
    std::string key(8, '\0');
    put_be64(key.data(), v);
    return key;
  }

  Result<std::uint32_t> allocate_room_id() {
    if (!next_room_id_) {
      auto stored = meta(kNextRoomIdKey);
      if (!stored) return stored.error();
      if (*stored) {
        if ((*stored)->size() != 4) return make_error(errc::internal, "corrupt record in meta: next_room_id");
        first_free_id_ = get_be32((*stored)->data());
      }
      next_room_id_ = first_free_id_;
    }
    if (*next_room_id_ == 0)  // wrapped: every u32 id is taken
      return make_error(errc::internal, "append_batch: out of room ids");
    return (*next_room_id_)++;
  }

  const Tables& tables_;
  lmdb::WriteTxn& txn_;
  std::map<std::string, PendingRoom> rooms_;
  std::map<std::string, std::uint64_t> reads_;  // members key -> the marker this batch moves it to
  bool any_mentions_ = false;
  bool copying_ = false;                   // the mentions table holds something (known so)
  std::map<std::string, LogPosition> logs_;  // shards whose log this batch extends
  std::map<std::string, std::vector<TermStart>> terms_;  // and their terms
  std::optional<std::uint64_t> next_reconciled_;
  std::uint32_t first_free_id_ = 1;             // as stored in meta
  std::optional<std::uint32_t> next_room_id_;   // loaded on the first CreateRoom
};

}  // namespace

// --- the store ----------------------------------------------------------------------

struct HistoryStore::Impl {
  Impl(DataDirLock lock, lmdb::Env env, const StoreOptions& options)
      : lock_(std::move(lock)), env_(std::move(env)), dir_(options.dir), max_map_bytes_(options.max_map_bytes), key_(options.key) {
    tables_.max_key = env_.max_key_size();
    tables_.seal = key_ ? &*key_ : nullptr;
  }

  // Opens the databases, and checks or (in a new store) writes the format version.
  Result<void> init() {
    const std::string where = "history store in '" + dir_.string() + "'";
    auto txn = env_.begin_write();
    if (!txn) return lmdb_error(errc::unavailable, where, txn.error());
    auto meta = txn->open_dbi("meta", MDB_CREATE);
    if (!meta) return lmdb_error(errc::unavailable, where, meta.error());
    tables_.meta = *meta;
    auto version = txn->get(tables_.meta, kFormatKey);
    std::uint32_t found = kFormatVersion;
    if (version) {
      if (version->size() != 4)
        return make_error(errc::internal, where + ": corrupt format version record");
      found = get_be32(version->data());
      if (found != kFormatVersion && found != 1)
        return make_error(errc::internal, where + " has format version " + std::to_string(found) +
                                              "; this build reads versions 1 (and brings them to " +
                                              std::to_string(kFormatVersion) + ") and " + std::to_string(kFormatVersion));
    } else if (version.error().not_found()) {
      if (lmdb::Status put = txn->put(tables_.meta, kFormatKey, be32(kFormatVersion)); !put.ok())
        return lmdb_error(errc::unavailable, where, put);
    } else {
      return lmdb_error(errc::unavailable, where, version.error());
    }
    for (auto [name, dbi] : {std::pair{"rooms", &tables_.rooms}, std::pair{"members", &tables_.members},
                             std::pair{"messages", &tables_.messages}, std::pair{"log", &tables_.log},
                             std::pair{"reconciled", &tables_.reconciled}, std::pair{"reads", &tables_.reads},
                             std::pair{"mentions", &tables_.mentions}, std::pair{"entries", &tables_.entries}}) {
      auto opened = txn->open_dbi(name, MDB_CREATE);
      if (!opened) return lmdb_error(errc::unavailable, where, opened.error());
      *dbi = *opened;
    }
    if (auto checked = check_key(*txn, where); !checked) return checked;
    if (lmdb::Status commit = txn->commit(); !commit.ok())
      return lmdb_error(errc::unavailable, where, commit);
    return found == 1 ? migrate_to_2(where) : Result<void>{};
  }

  // Format 1 to 2: each message of a store in clear becomes its message map, in write
  // transactions of kMigrateChunk messages (a crash midway leaves both forms, which
  // both read; the next open goes on), then the version says 2. A sealed store's
  // values do not change.
  Result<void> migrate_to_2(const std::string& where) {
    constexpr std::size_t kMigrateChunk = 20'000;
    if (tables_.seal == nullptr) {
      std::unordered_map<std::uint32_t, std::string> names;  // room id -> name
      {
        auto txn = env_.begin_read();
        if (!txn) return lmdb_error(errc::unavailable, where, txn.error());
        auto rooms = txn->cursor(tables_.rooms);
        if (!rooms) return lmdb_error(errc::unavailable, where, rooms.error());
        for (auto at = rooms->get(MDB_FIRST); at; at = rooms->get(MDB_NEXT)) {
          auto record = decode_room(at->value, at->key);
          if (!record) return record.error();
          names.emplace(record->id, std::string(at->key));
        }
      }
      std::string from = std::string(kRoomPrefixSize + 8, '\0');  // the first key not yet looked at
      for (bool done = false; !done;) {
        auto txn = env_.begin_write();
        if (!txn) return lmdb_error(errc::unavailable, where, txn.error());
        std::vector<std::pair<std::string, std::string>> changed;  // key, map
        std::string next;
        bool last = false;
        {
          auto messages = txn->cursor(tables_.messages);
          if (!messages) return lmdb_error(errc::unavailable, where, messages.error());
          auto at = messages->seek(from);
          std::size_t looked = 0;
          for (; at && looked < kMigrateChunk; at = messages->get(MDB_NEXT), ++looked) {
            if (is_map(at->value)) continue;
            auto name = at->key.size() == kMessageKeySize ? names.find(get_be32(at->key.data())) : names.end();
            if (name == names.end()) return make_error(errc::internal, where + ": a message of no room in the store");
            auto message = decode_message(at->key, at->value, name->second, nullptr);
            if (!message) return message.error();
            changed.emplace_back(std::string(at->key), encode_message(*message, at->key, nullptr));
          }
          if (at) next = std::string(at->key);
          else if (!at.error().not_found()) return lmdb_error(errc::unavailable, where, at.error());
          else last = true;
        }
        lmdb::Status put;
        for (const auto& [key, map] : changed)
          if (put = txn->put(tables_.messages, key, map); !put.ok()) break;
        if (put.ok() && last) put = txn->put(tables_.meta, kFormatKey, be32(kFormatVersion));
        if (put.ok()) put = txn->commit();
        if (put.map_full()) {  // maps are larger than the arrays were: grow, and this chunk again
          txn->abort();
          auto grown = grow_map();
          if (!grown) return grown.error();
          if (!*grown) return make_error(errc::storage_full, where + ": no room to bring it to format 2 (max_store_mb)");
          continue;
        }
        if (!put.ok()) return lmdb_error(errc::unavailable, where, put);
        from = std::move(next);
        done = last;
      }
      return {};
    }
    auto txn = env_.begin_write();
    if (!txn) return lmdb_error(errc::unavailable, where, txn.error());
    if (lmdb::Status put = txn->put(tables_.meta, kFormatKey, be32(kFormatVersion)); !put.ok())
      return lmdb_error(errc::unavailable, where, put);
    if (lmdb::Status commit = txn->commit(); !commit.ok()) return lmdb_error(errc::unavailable, where, commit);
    return {};
  }

  // A sealed store keeps its key's fingerprint; the key given must match it. A store
  // becomes sealed when it is first opened with a key while it holds no message.
  Result<void> check_key(lmdb::WriteTxn& txn, const std::string& where) {
    auto stored = txn.get(tables_.meta, kKeyFingerprintKey);
    if (!stored && !stored.error().not_found()) return lmdb_error(errc::unavailable, where, stored.error());
    if (stored) {
      if (!key_)
        return make_error(errc::bad_field, where + " is sealed (its message bodies are encrypted): give its key");
      if (*stored != key_->fingerprint())
        return make_error(errc::bad_field, where + " was sealed with another key: this key would read nothing");
      return {};
    }
    if (!key_) return {};
    auto messages = txn.cursor(tables_.messages);
    if (!messages) return lmdb_error(errc::unavailable, where, messages.error());
    auto first = messages->get(MDB_FIRST);
    if (first)
      return make_error(errc::bad_field, where + " holds messages in clear: a store is sealed from its first "
                                                 "message on, so start a sealed one in a new data directory");
    if (!first.error().not_found()) return lmdb_error(errc::unavailable, where, first.error());
    if (lmdb::Status put = txn.put(tables_.meta, kKeyFingerprintKey, key_->fingerprint()); !put.ok())
      return lmdb_error(errc::unavailable, where, put);
    return {};
  }

  // One attempt at a batch: one write transaction, committed or aborted on return.
  Result<void> apply_batch(std::span<const std::span<const Record>> groups) {
    auto txn = env_.begin_write();
    if (!txn) return lmdb_error(errc::unavailable, "append_batch", txn.error());
    BatchWriter writer(tables_, *txn);
    for (const auto& records : groups)
      for (const Record& record : records) {
        Result<void> applied = std::visit(writer, record);
        if (!applied) return applied;  // ~WriteTxn aborts: nothing of the batch is stored
      }
    if (Result<void> finished = writer.finish(); !finished) return finished;
    if (lmdb::Status commit = txn->commit(); !commit.ok()) return write_error("append_batch", commit);
    // Only now are the new rooms real, and the deleted ones gone.
    for (const auto& name : writer.deleted()) room_ids_.erase(name);
    for (auto& [name, id] : writer.created()) room_ids_.insert_or_assign(std::move(name), id);
    return {};
  }

  // Doubles the map, up to max_map_bytes_. False if it is at the maximum already.
  // Legal only with no transaction active: the store holds none between calls.
  Result<bool> grow_map() {
    // Running backups hold remap_ for as long as they run: they are stopped, and none
    // begins (Reader::backup waits for backups_mutex_) until the map has grown.
    std::lock_guard no_backups(backups_mutex_);
    for (auto& b : backups_)
      if (auto running = b.lock()) running->abort();
    backups_.clear();
    std::unique_lock remapping(remap_);  // no reader's transaction is open meanwhile (Reader)
    const std::size_t current = env_.map_size();
    if (current >= max_map_bytes_) return false;
    std::size_t next = current > max_map_bytes_ / 2 ? max_map_bytes_ : current * 2;
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    next -= next % page;  // LMDB wants a multiple of the OS page size
    if (next <= current) return false;
    if (lmdb::Status set = env_.set_map_size(next); !set.ok())
      return lmdb_error(errc::unavailable, "append_batch: growing the map", set);
    return true;
  }

  // The id of `room`, or no_such_room. `cached`: from room_ids_ (the writer's thread only).
  Result<std::uint32_t> room_id(const lmdb::ReadTxn& txn, const std::string& room, bool cached = true) const {
    if (cached)
      if (auto it = room_ids_.find(room); it != room_ids_.end()) return it->second;
    if (room.empty() || room.size() > tables_.max_key) return no_such_room(room);
    auto value = txn.get(tables_.rooms, room);
    if (!value) {
      if (value.error().not_found()) return no_such_room(room);
      return lmdb_error(errc::unavailable, "history read", value.error());
    }
    auto record = decode_room(*value, room);
    if (!record) return record.error();
    if (cached) room_ids_.emplace(room, record->id);  // committed data: safe to cache
    return record->id;
  }

  // A read of one room's messages: its transaction, the room's id and a cursor on the
  // messages (declared after the transaction: closed before it). Errors: no_such_room,
  // unavailable.
  struct RoomRead {
    lmdb::ReadTxn txn;
    std::uint32_t id = 0;
    lmdb::Cursor cursor;
  };
  Result<RoomRead> read_room(const std::string& room, bool cached = true) const {
    auto txn = env_.begin_read();
    if (!txn) return lmdb_error(errc::unavailable, "history read", txn.error());
    auto id = room_id(*txn, room, cached);
    if (!id) return id.error();
    auto cursor = txn->cursor(tables_.messages);
    if (!cursor) return lmdb_error(errc::unavailable, "history read", cursor.error());
    return RoomRead{std::move(*txn), *id, std::move(*cursor)};
  }

  // The newest `limit` messages of `room` with seq < `below` (all of them when
  // `below` is empty), walking back from there.
  Result<Page> page_backward(const std::string& room, std::optional<std::uint64_t> below,
                             std::size_t limit) const {
    auto read = read_room(room);
    if (!read) return read.error();
    auto at = last_below(read->cursor, read->id, below);
    return collect(room, read->id, read->cursor, std::move(at), MDB_PREV, limit);
  }

  // The cursor at the last key of room `id` below seq `below` (its last key, when
  // `below` is empty): the entry before the first key at or past the bound, or the last
  // entry of all when no key is at or past it. (It may be another room's: callers check.)
  static lmdb::Expected<lmdb::Entry> last_below(lmdb::Cursor& cursor, std::uint32_t id,
                                                std::optional<std::uint64_t> below) {
    std::optional<std::string> bound;
    if (below) bound = message_key(id, *below);
    else if (id != std::numeric_limits<std::uint32_t>::max()) bound = room_prefix(id + 1);
    auto at = bound ? cursor.seek(*bound) : cursor.get(MDB_LAST);
    if (bound && at) at = cursor.get(MDB_PREV);
    else if (bound && at.error().not_found()) at = cursor.get(MDB_LAST);
    return at;
  }

  // The oldest `limit` messages of `room` with seq > `above`.
  Result<Page> page_forward(const std::string& room, std::uint64_t above, std::size_t limit) const {
    auto read = read_room(room);
    if (!read) return read.error();
    if (above == std::numeric_limits<std::uint64_t>::max()) return Page{};
    auto at = read->cursor.seek(message_key(read->id, above + 1));
    return collect(room, read->id, read->cursor, std::move(at), MDB_NEXT, limit);
  }


  // A page as message maps: the stored values as they are in a store in clear; made from
  // the decoded message where a value is not one (sealed, or format 1 midway).
  // `cached`: room ids from room_ids_ (on the writer's thread; a Reader looks them up in
  // its own transaction).
  // A page's maps as they are taken, up to its limit and its byte limit (one map at least).
  struct PageMaps {
    const PageQuery& q;
    std::vector<std::string_view> maps = {};  // valid while the read transaction lives
    std::deque<std::string> made = {};        // maps made here (values that are not maps); stable addresses
    std::size_t bytes = 0;
    bool full() const { return maps.size() == q.limit; }
    // False: `map` would pass the byte limit (the page has more).
    bool add(std::string_view map) {
      if (!maps.empty() && bytes + map.size() > q.max_bytes) return false;
      bytes += map.size();
      maps.push_back(map);
      return true;
    }
    // Into `page` in ascending seq order (`backward`: they were taken newest first).
    void into(MapPage& page, bool backward) {
      if (backward) std::reverse(maps.begin(), maps.end());
      page.maps.reserve(bytes);
      for (auto map : maps) page.maps.append(map);
      page.count = maps.size();
    }
  };

  // The map a page shows for the value `value` stored under `key`: the value itself in
  // a store in clear; made (into `made`) from the decoded message where it is sealed (or
  // of format 1), or where the reader's own reactions are to be marked (`mine`).
  Result<std::string_view> page_map(const lmdb::ReadTxn& txn, std::uint32_t id, const std::string& room,
                                    std::string_view key, std::string_view value, const PageQuery& q,
                                    std::deque<std::string>& made) const {
    if (!is_map(value) || tables_.seal != nullptr) {
      auto message = decode_message(key, value, room, tables_.seal);
      if (!message) return message.error();
      if (!q.reader.empty()) add_mine(txn, id, message->seq, message->entry, q.reader);
      made.push_back(encode_message_map(message->room, message->seq, message->user, message->ts_ms, message->body,
                                        message->client_msg_id, message->mentions,
                                        message->entry.plain() ? nullptr : &message->entry));
      return std::string_view(made.back());
    }
    if (q.reader.empty() || static_cast<unsigned char>(value[0]) <= 0x87) return value;
    // More than a plain message's fields: reactions, maybe, and the reader's own among them.
    auto read_map = read_message_map(value);
    if (!read_map || read_map->entry.reactions.empty()) return value;
    add_mine(txn, id, read_map->seq, read_map->entry, q.reader);
    if (read_map->entry.mine.empty()) return value;
    std::vector<std::string> mentions(read_map->mentions.begin(), read_map->mentions.end());
    made.push_back(encode_message_map(read_map->room, read_map->seq, read_map->user, read_map->ts_ms, read_map->body,
                                      read_map->client_msg_id, mentions, &read_map->entry));
    return std::string_view(made.back());
  }

  // A page of one thread (PageQuery::thread): the seqs of the thread come from its root's
  // thread rows (the root's own seq is below every one of them), its maps from the
  // messages table as page_maps makes them.
  Result<MapPage> thread_maps(RoomRead& read, const std::string& room, const PageQuery& q) const {
    const std::string root_key = message_key(read.id, q.thread);
    auto root_value = read.txn.get(tables_.messages, root_key);
    if (!root_value && !root_value.error().not_found()) return lmdb_error(errc::unavailable, "history read", root_value.error());
    std::optional<StoredFields> root;  // read in place in a store in clear: page_map shows it
    if (root_value && q.thread <= q.up_to) {
      auto fields = stored_fields(root_key, *root_value, room, q.thread);
      if (!fields) return fields.error();
      root = std::move(*fields);
    }
    if (!root || root->entry.kind != EntryKind::message || root->entry.thread != 0)
      return make_error(errc::no_such_message, "message " + std::to_string(q.thread) + " of room '" + room +
                                                   "' is no thread's root: " +
                                                   (!root ? "there is none (none yet, or trimmed)"
                                                    : root->entry.thread != 0 ? "it is in thread " + std::to_string(root->entry.thread)
                                                                              : "it is an edit, delete or reaction"));
    // The thread's seqs in the direction read, the root's among them: one more than the
    // limit says whether there is more.
    const bool forward = q.mode == PageQuery::Mode::after;
    const std::uint64_t below = std::min(q.mode == PageQuery::Mode::before ? q.seq : ~std::uint64_t{0},
                                         q.up_to == ~std::uint64_t{0} ? q.up_to : q.up_to + 1);
    const std::string rows = entries_prefix(read.id, q.thread) + kThreadRow;
    auto cursor = read.txn.cursor(tables_.entries);
    if (!cursor) return lmdb_error(errc::unavailable, "history read", cursor.error());
    std::vector<std::uint64_t> seqs;
    auto seq_of = [&](std::string_view key) { return get_be64(key.data() + key.size() - 8); };
    auto in_thread = [&](const lmdb::Expected<lmdb::Entry>& at) {
      return at && at->key.size() == rows.size() + 8 && at->key.starts_with(rows);
    };
    if (forward) {
      if (q.thread > q.seq) seqs.push_back(q.thread);
      for (auto at = cursor->seek(thread_key(read.id, q.thread, std::max(q.seq, q.thread) + 1));
           in_thread(at) && seqs.size() <= q.limit && seq_of(at->key) < below; at = cursor->get(MDB_NEXT))
        seqs.push_back(seq_of(at->key));
    } else {
      auto at = cursor->seek(thread_key(read.id, q.thread, below));  // the first at or past the bound, then back
      at = at ? cursor->get(MDB_PREV) : cursor->get(MDB_LAST);
      for (; in_thread(at) && seqs.size() <= q.limit; at = cursor->get(MDB_PREV)) seqs.push_back(seq_of(at->key));
      if (seqs.size() <= q.limit && q.thread < below) seqs.push_back(q.thread);
    }
    MapPage page;
    PageMaps maps{q};
    for (std::uint64_t seq : seqs) {
      const std::string key = message_key(read.id, seq);
      auto value = read.txn.get(tables_.messages, key);
      if (!value) {
        if (value.error().not_found()) continue;  // trimmed
        return lmdb_error(errc::unavailable, "history read", value.error());
      }
      if (maps.full()) {
        page.more = true;
        break;
      }
      auto map = page_map(read.txn, read.id, room, key, *value, q, maps.made);
      if (!map) return map.error();
      if (!maps.add(*map)) {
        page.more = true;
        break;
      }
    }
    maps.into(page, !forward);
    return page;
  }

  Result<MapPage> page_maps(const std::string& room, const PageQuery& q, bool cached = true) const {
    auto read = read_room(room, cached);
    if (!read) return read.error();
    if (q.thread != 0) return thread_maps(*read, room, q);
    const std::uint32_t* id = &read->id;
    lmdb::Cursor* cursor = &read->cursor;
    const bool forward = q.mode == PageQuery::Mode::after;
    lmdb::Expected<lmdb::Entry> at = lmdb::Status{MDB_NOTFOUND, "mdb_cursor_get"};
    if (forward) {
      if (q.seq == std::numeric_limits<std::uint64_t>::max()) return MapPage{};
      at = cursor->seek(message_key(*id, q.seq + 1));
    } else {
      // Below `seq` (before) and past nothing unacknowledged: the last key under the bound.
      std::optional<std::uint64_t> below;
      if (q.mode == PageQuery::Mode::before) below = q.seq;
      if (q.up_to != std::numeric_limits<std::uint64_t>::max()) below = std::min(below.value_or(q.up_to + 1), q.up_to + 1);
      at = last_below(*cursor, *id, below);
    }
    MapPage page;
    // Where the room's history starts decides whether the page asked for what was
    // trimmed: an `after` that does not land on its next seq, a backward page that
    // reached the oldest message.
    const bool landed = forward && at && at->key == message_key(*id, q.seq + 1);
    PageMaps maps{q};
    for (;; at = cursor->get(forward ? MDB_NEXT : MDB_PREV)) {
      if (!at) {
        if (at.error().not_found()) break;
        return lmdb_error(errc::unavailable, "history read", at.error());
      }
      if (!in_room(at->key, *id)) break;
      if (forward && get_be64(at->key.data() + kRoomPrefixSize) > q.up_to) break;  // not acknowledged yet
      if (maps.full()) {
        page.more = true;
        break;
      }
      auto map = page_map(read->txn, *id, room, at->key, at->value, q, maps.made);
      if (!map) return map.error();
      if (!maps.add(*map)) {
        page.more = true;
        break;
      }
    }
    if (forward ? !landed : !page.more) {
      auto value = read->txn.get(tables_.rooms, room);
      if (!value) return lmdb_error(errc::unavailable, "history read", value.error());
      auto record = decode_room(*value, room);
      if (!record) return record.error();
      const bool cut = forward ? q.seq + 1 < record->first_seq : record->first_seq > 1;
      if (cut) page.truncated_at = record->first_seq;
    }
    maps.into(page, !forward);
    return page;
  }

  // The keys of `entry`'s reactions that `reader` reacted with, into entry.mine.
  void add_mine(const lmdb::ReadTxn& txn, std::uint32_t room_id, std::uint64_t seq, EntryFields& entry,
                const std::string& reader) const {
    for (const auto& r : entry.reactions)
      if (txn.get(tables_.entries, reaction_key(room_id, seq, r.key, reader))) entry.mine.push_back(r.key);
  }

  std::vector<Result<TargetState>> targets(const std::vector<HistoryStore::TargetQuery>& queries) const {
    std::vector<Result<TargetState>> found;
    found.reserve(queries.size());
    auto txn = env_.begin_read();
    for (const auto& q : queries)
      found.push_back(txn ? target_in(*txn, q.room, q.seq, q.user, q.key)
                          : Result<TargetState>(lmdb_error(errc::unavailable, "history read", txn.error())));
    return found;
  }

  // The sender, time and entry fields of the entry stored under `key` as `value`: read in
  // place from the message map in a store in clear, else from the decoded message.
  struct StoredFields {
    std::string user;
    std::uint64_t ts_ms = 0;
    EntryFields entry;
  };
  Result<StoredFields> stored_fields(std::string_view key, std::string_view value, const std::string& room,
                                     std::uint64_t seq) const {
    if (tables_.seal == nullptr && is_map(value))
      if (auto map = read_message_map(value); map && map->seq == seq && map->room == room)
        return StoredFields{std::string(map->user), map->ts_ms, std::move(map->entry)};
    auto message = decode_message(key, value, room, tables_.seal);  // names what is wrong with it
    if (!message) return message.error();
    return StoredFields{std::move(message->user), message->ts_ms, std::move(message->entry)};
  }

  // target() in the read transaction `txn`.
  Result<TargetState> target_in(const lmdb::ReadTxn& txn, const std::string& room, std::uint64_t seq,
                                const std::string& user, const std::string& key) const {
    auto id = room_id(txn, room);
    if (!id) return id.error();
    TargetState state;
    const std::string at = message_key(*id, seq);
    auto value = txn.get(tables_.messages, at);
    if (!value) {
      if (value.error().not_found()) return state;
      return lmdb_error(errc::unavailable, "history read", value.error());
    }
    auto fields = stored_fields(at, *value, room, seq);
    if (!fields) return fields.error();
    state.found = true;
    state.user = std::move(fields->user);
    state.ts_ms = fields->ts_ms;
    state.kind = fields->entry.kind;
    state.deleted = fields->entry.deleted;
    state.reactions = std::move(fields->entry.reactions);
    state.thread = fields->entry.thread;
    if (!user.empty() && !key.empty()) {
      const std::string row = reaction_key(*id, seq, key, user);
      if (row.size() <= tables_.max_key) {
        auto had = txn.get(tables_.entries, row);
        if (!had && !had.error().not_found()) return lmdb_error(errc::unavailable, "history read", had.error());
        state.reacted = static_cast<bool>(had);
      }
    }
    return state;
  }

  // Reads up to `limit` messages of room `id` from `at` on, stepping by `step`; sets
  // `more` if one more of the room's messages lies beyond them. Ascending order.
  Result<Page> collect(const std::string& room, std::uint32_t id, lmdb::Cursor& cursor,
                       lmdb::Expected<lmdb::Entry> at, MDB_cursor_op step, std::size_t limit) const {
    Page page;
    for (;; at = cursor.get(step)) {
      if (!at) {
        if (at.error().not_found()) break;
        return lmdb_error(errc::unavailable, "history read", at.error());
      }
      if (!in_room(at->key, id)) break;
      if (page.messages.size() == limit) {
        page.more = true;
        break;
      }
      auto message = decode_message(at->key, at->value, room, tables_.seal);
      if (!message) return message.error();
      page.messages.push_back(std::move(*message));
    }
    if (step == MDB_PREV) std::reverse(page.messages.begin(), page.messages.end());
    return page;
  }

  Result<Snapshot> snapshot(std::uint64_t since_ms) const {
    auto txn = env_.begin_read();
    if (!txn) return lmdb_error(errc::unavailable, "snapshot", txn.error());
    auto rooms = txn->cursor(tables_.rooms);
    auto members = txn->cursor(tables_.members);
    auto messages = txn->cursor(tables_.messages);
    auto reads = txn->cursor(tables_.reads);
    auto mentions = txn->cursor(tables_.mentions);
    for (auto* c : {&rooms, &members, &messages, &reads, &mentions})
      if (!*c) return lmdb_error(errc::unavailable, "snapshot", c->error());

    Snapshot snapshot;
    for (auto room_at = rooms->get(MDB_FIRST);; room_at = rooms->get(MDB_NEXT)) {
      if (!room_at) {
        if (room_at.error().not_found()) break;
        return lmdb_error(errc::unavailable, "snapshot", room_at.error());
      }
      std::string name(room_at->key);
      auto record = decode_room(room_at->value, name);
      if (!record) return record.error();
      RoomState state{record->creator, record->created_ms, record->last_seq, {}, record->private_room, {}};
      state.receipts = record->receipts;
      state.first_seq = record->first_seq;
      state.retention = record->retention;

      const std::string prefix = room_prefix(record->id);
      auto member_at = members->seek(prefix);
      for (; member_at && in_room(member_at->key, record->id); member_at = members->get(MDB_NEXT)) {
        const auto user = member_at->key.substr(kRoomPrefixSize);
        if (member_at->value == kRemovedValue) {
          state.removed.emplace(user);
          continue;
        }
        if (member_at->value == kBannedValue) {
          state.banned.emplace(user);
          continue;
        }
        auto role = read_role_value(member_at->value, user, *record);
        if (!role) return make_error(errc::internal, "corrupt record in members: room '" + name + "' user '" +
                                                         std::string(user) + "'");
        state.members.emplace(user, *role);
      }
      if (!member_at && !member_at.error().not_found())
        return lmdb_error(errc::unavailable, "snapshot", member_at.error());
      auto read_at = reads->seek(prefix);
      for (; read_at && in_room(read_at->key, record->id); read_at = reads->get(MDB_NEXT)) {
        if (read_at->value.size() != 8)
          return make_error(errc::internal, "corrupt record in reads: room '" + name + "'");
        state.read.emplace(read_at->key.substr(kRoomPrefixSize), get_be64(read_at->value.data()));
      }
      if (!read_at && !read_at.error().not_found()) return lmdb_error(errc::unavailable, "snapshot", read_at.error());
      auto mention_at = mentions->seek(prefix);
      for (; mention_at && in_room(mention_at->key, record->id); mention_at = mentions->get(MDB_NEXT)) {
        const std::string_view key = mention_at->key;
        if (key.size() < kRoomPrefixSize + 1 + kMentionTail || key[key.size() - kMentionTail] != '\0')
          return make_error(errc::internal, "corrupt key in mentions: room '" + name + "'");
        state.mentions[std::string(key.substr(kRoomPrefixSize, key.size() - kRoomPrefixSize - kMentionTail))].push_back(
            mention_seq(key));
      }
      if (!mention_at && !mention_at.error().not_found())
        return lmdb_error(errc::unavailable, "snapshot", mention_at.error());

      // Recent publishes: back from the last message while they are recent enough.
      const std::size_t first_recent = snapshot.recent.size();
      if (record->last_seq >= record->first_seq) {  // it holds a message (all may be trimmed)
        auto at = messages->find(message_key(record->id, record->last_seq));
        if (!at && at.error().not_found())
          return make_error(errc::internal, "snapshot: room '" + name + "': last seq " +
                                                std::to_string(record->last_seq) + " is not stored");
        for (; at && in_room(at->key, record->id); at = messages->get(MDB_PREV)) {
          auto message = decode_message(at->key, at->value, name, tables_.seal);
          if (!message) return message.error();
          if (message->seq == record->last_seq) {  // the newest: what the room's summary shows
            state.last_ts_ms = message->ts_ms;
            state.last_user = message->user;
            state.preview = utf8_prefix(entry_preview(message->entry, message->body), kPreviewBytes);
          }
          if (message->ts_ms < since_ms) break;
          snapshot.recent.push_back(RecentPublish{name, std::move(message->user),
                                                  std::move(message->client_msg_id),
                                                  message->seq, message->ts_ms});
        }
        if (!at && !at.error().not_found())
          return lmdb_error(errc::unavailable, "snapshot", at.error());
      }
      std::reverse(snapshot.recent.begin() + static_cast<std::ptrdiff_t>(first_recent),
                   snapshot.recent.end());

      room_ids_.emplace(name, record->id);
      snapshot.rooms.emplace(std::move(name), std::move(state));
    }
    auto meta = txn->cursor(tables_.meta);
    if (!meta) return lmdb_error(errc::unavailable, "snapshot", meta.error());
    for (auto at = meta->seek(kLogPositionPrefix); at && at->key.substr(0, kLogPositionPrefix.size()) == kLogPositionPrefix;
         at = meta->get(MDB_NEXT)) {
      if (at->value.size() != 16) return make_error(errc::internal, "corrupt record in meta: " + std::string(at->key));
      snapshot.logs.emplace(std::string(at->key.substr(kLogPositionPrefix.size())),
                            LogPosition{get_be64(at->value.data()), get_be64(at->value.data() + 8)});
    }
    for (auto at = meta->seek(kTermsPrefix); at && at->key.substr(0, kTermsPrefix.size()) == kTermsPrefix;
         at = meta->get(MDB_NEXT)) {
      auto terms = read_terms(at->value);
      if (!terms) return make_error(errc::internal, "corrupt record in meta: " + std::string(at->key));
      snapshot.terms.emplace(std::string(at->key.substr(kTermsPrefix.size())), std::move(*terms));
    }
    for (const auto& [shard, position] : snapshot.logs)  // written before terms were kept: all term 1
      if (position.lsn > 0 && !snapshot.terms.count(shard)) snapshot.terms[shard] = {{position.term, 1}};
    for (auto at = meta->seek(kVotePrefix); at && at->key.substr(0, kVotePrefix.size()) == kVotePrefix;
         at = meta->get(MDB_NEXT)) {
      const auto shard = at->key.substr(kVotePrefix.size());
      auto vote = read_vote(shard, at->value);
      if (!vote) return make_error(errc::internal, "corrupt record in meta: " + std::string(at->key));
      snapshot.votes.emplace(std::string(shard), std::move(*vote));
    }
    return snapshot;
  }

  Result<std::vector<StoredMessage>> reconciled() const {
    auto txn = env_.begin_read();
    if (!txn) return lmdb_error(errc::unavailable, "reconciled read", txn.error());
    auto cursor = txn->cursor(tables_.reconciled);
    if (!cursor) return lmdb_error(errc::unavailable, "reconciled read", cursor.error());
    std::vector<StoredMessage> out;
    for (auto at = cursor->get(MDB_FIRST);; at = cursor->get(MDB_NEXT)) {
      if (!at) {
        if (at.error().not_found()) break;
        return lmdb_error(errc::unavailable, "reconciled read", at.error());
      }
      const auto v = at->value;
      if (v.size() < 16 || v.size() < 16 + get_be32(v.data() + 12))
        return make_error(errc::internal, "corrupt record in reconciled");
      const std::string room(v.substr(16, get_be32(v.data() + 12)));
      const std::string key = message_key(get_be32(v.data()), get_be64(v.data() + 4));
      auto message = decode_message(key, v.substr(16 + room.size()), room, tables_.seal);
      if (!message) return message.error();
      out.push_back(std::move(*message));
    }
    return out;
  }

  Result<std::uint64_t> copy_to(const std::filesystem::path& dir) const {
    if (lmdb::Status copied = env_.copy_to(dir.string(), true); !copied.ok())
      return lmdb_error(errc::unavailable, "copying the store to '" + dir.string() + "'", copied);
    std::error_code ec;
    const auto size = std::filesystem::file_size(dir / "data.mdb", ec);
    if (ec) return make_error(errc::unavailable, "copying the store to '" + dir.string() + "': " + ec.message());
    return static_cast<std::uint64_t>(size);
  }

  // Moves this store's messages of `room` that the copy lacks (none at that seq, or
  // another message there) into the reconciled table; how many.
  Result<std::uint64_t> reconcile_missing(lmdb::WriteTxn& txn, BatchWriter& writer, const lmdb::ReadTxn& from,
                                          const Tables& theirs, const std::string& room) {
    auto value = txn.get(tables_.rooms, room);
    if (!value) return write_error("install", value.error());
    auto mine = decode_room(*value, room);
    if (!mine) return mine.error();
    std::optional<RoomRecord> copied;
    if (auto their = from.get(theirs.rooms, room); their) {
      auto record = decode_room(*their, room);
      if (!record) return record.error();
      copied = std::move(*record);
    } else if (!their.error().not_found()) {
      return lmdb_error(errc::unavailable, "install", their.error());
    }
    auto cursor = txn.cursor(tables_.messages);
    if (!cursor) return write_error("install", cursor.error());
    std::uint64_t kept = 0;
    for (auto at = cursor->seek(room_prefix(mine->id)); at && in_room(at->key, mine->id); at = cursor->get(MDB_NEXT)) {
      const std::uint64_t seq = get_be64(at->key.data() + kRoomPrefixSize);
      if (copied && seq < copied->first_seq) continue;  // removed there by its retention: not a divergence
      if (copied && seq <= copied->last_seq) {
        auto message = decode_message(at->key, at->value, room, tables_.seal);
        if (!message) return message.error();
        const std::string their_key = message_key(copied->id, seq);
        auto theirs_at = from.get(theirs.messages, their_key);
        if (theirs_at) {
          auto their_message = decode_message(their_key, *theirs_at, room, theirs.seal);
          if (their_message && *their_message == *message) continue;  // the same message
        }
      }
      if (auto done = writer.keep_reconciled(mine->id, seq, room, at->value); !done) return done.error();
      ++kept;
    }
    return kept;
  }

  // One attempt at installing a shard from a copy: one write transaction.
  Result<InstalledShard> apply_install(const lmdb::Env& copy, const std::string& where, const std::string& shard,
                                       const std::function<bool(std::string_view)>& in_shard, std::uint64_t since_ms) {
    auto from = copy.begin_read();
    if (!from) return lmdb_error(errc::unavailable, where, from.error());
    Tables theirs;
    for (auto [name, dbi] : {std::pair{"meta", &theirs.meta}, std::pair{"rooms", &theirs.rooms},
                             std::pair{"members", &theirs.members}, std::pair{"messages", &theirs.messages}}) {
      auto opened = from->open_dbi(name);
      if (!opened) return lmdb_error(errc::internal, where + ": no '" + name + "' table", opened.error());
      *dbi = *opened;
    }
    std::optional<lmdb::Dbi> theirs_reads, theirs_entries;
    if (auto opened = from->open_dbi("reads"); opened) theirs_reads = *opened;
    else if (!opened.error().not_found()) return lmdb_error(errc::internal, where + ": 'reads' table", opened.error());
    if (auto opened = from->open_dbi("entries"); opened) theirs_entries = *opened;
    else if (!opened.error().not_found()) return lmdb_error(errc::internal, where + ": 'entries' table", opened.error());
    auto version = from->get(theirs.meta, kFormatKey);
    if (!version || version->size() != 4 || get_be32(version->data()) != kFormatVersion)
      return make_error(errc::internal, where + ": not a store of format version " + std::to_string(kFormatVersion));
    // Their bodies open with their key, which must be this store's (or none at all).
    if (auto fingerprint = from->get(theirs.meta, kKeyFingerprintKey); fingerprint) {
      if (!key_ || *fingerprint != key_->fingerprint())
        return make_error(errc::bad_field, where + " is sealed with another store key than this node's: members of a "
                                                   "replicated shard need the same store_key to copy it");
      theirs.seal = &*key_;
    } else if (!fingerprint.error().not_found()) {
      return lmdb_error(errc::unavailable, where, fingerprint.error());
    }
    InstalledShard installed;
    auto position = from->get(theirs.meta, std::string(kLogPositionPrefix) + shard);
    if (position && position->size() == 16)
      installed.position = {get_be64(position->data()), get_be64(position->data() + 8)};
    else if (position || !position.error().not_found())
      return make_error(errc::internal, where + ": unreadable log position of shard '" + shard + "'");
    if (auto terms = from->get(theirs.meta, std::string(kTermsPrefix) + shard); terms) {
      auto read = read_terms(*terms);
      if (!read) return make_error(errc::internal, where + ": unreadable terms of shard '" + shard + "'");
      installed.terms = std::move(*read);
    } else if (installed.position.lsn > 0) {
      installed.terms = {{installed.position.term, 1}};
    }

    auto txn = env_.begin_write();
    if (!txn) return lmdb_error(errc::unavailable, "install", txn.error());
    BatchWriter writer(tables_, *txn);
    // This store's rooms of the shard go first.
    std::vector<std::string> mine;
    {
      auto rooms = txn->cursor(tables_.rooms);
      if (!rooms) return write_error("install", rooms.error());
      for (auto at = rooms->get(MDB_FIRST); at; at = rooms->get(MDB_NEXT))
        if (in_shard(at->key)) mine.emplace_back(at->key);
    }
    // Its messages the copy does not have (a tail no majority had) are kept in the
    // reconciled table, as a truncation keeps them.
    for (const auto& room : mine) {
      auto kept = reconcile_missing(*txn, writer, *from, theirs, room);
      if (!kept) return kept.error();
      installed.reconciled += *kept;
    }
    for (auto& room : mine)
      if (auto done = writer(DeleteRoom{std::move(room)}); !done) return done.error();
    writer.copying(true);  // entries come with their targets as they are, and their rows below
    auto rooms = from->cursor(theirs.rooms);
    auto members = from->cursor(theirs.members);
    auto messages = from->cursor(theirs.messages);
    for (auto* c : {&rooms, &members, &messages})
      if (!*c) return lmdb_error(errc::unavailable, where, c->error());
    for (auto room_at = rooms->get(MDB_FIRST);; room_at = rooms->get(MDB_NEXT)) {
      if (!room_at) {
        if (room_at.error().not_found()) break;
        return lmdb_error(errc::unavailable, where, room_at.error());
      }
      if (!in_shard(room_at->key)) continue;
      std::string name(room_at->key);
      auto record = decode_room(room_at->value, name);
      if (!record) return record.error();
      CreateRoom create{name, record->creator, record->created_ms, record->private_room};
      if (auto done = writer(create); !done) return done.error();
      installed.view.emplace_back(std::move(create));
      if (record->receipts) {
        SetReceipts receipts{name, true};
        if (auto done = writer(receipts); !done) return done.error();
        installed.view.emplace_back(std::move(receipts));
      }
      if (record->retention != Retention{}) {
        SetRetention retention{name, record->retention};
        if (auto done = writer(retention); !done) return done.error();
        installed.view.emplace_back(std::move(retention));
      }
      if (record->first_seq > 1) {  // it starts where the copy's does (trimmed, or imported from there)
        TrimRoom start{name, record->first_seq};
        if (auto done = writer(start); !done) return done.error();
        installed.view.emplace_back(std::move(start));
      }
      ++installed.rooms;
      const std::string prefix = room_prefix(record->id);
      for (auto at = members->seek(prefix); at && in_room(at->key, record->id); at = members->get(MDB_NEXT)) {
        const auto user = at->key.substr(kRoomPrefixSize);
        if (at->value == kRemovedValue || at->value == kBannedValue) {
          RemoveMember remove{name, std::string(user), true, at->value == kBannedValue};
          if (auto done = writer(remove); !done) return done.error();
          installed.view.emplace_back(std::move(remove));
          continue;
        }
        auto role = read_role_value(at->value, user, *record);
        if (!role) return make_error(errc::internal, where + ": corrupt member '" + std::string(user) + "' of room '" + name + "'");
        AddMember add{name, std::string(user), *role};
        if (auto done = writer(add); !done) return done.error();
        installed.view.emplace_back(std::move(add));
      }
      for (auto at = messages->seek(prefix); at && in_room(at->key, record->id); at = messages->get(MDB_NEXT)) {
        auto message = decode_message(at->key, at->value, name, theirs.seal);
        if (!message) return make_error(errc::internal, where + ": " + message.error().message);
        if (auto done = writer(*message); !done) return done.error();
        ++installed.messages;
        // Chat follows recent messages (its retry window), the newest, and those that
        // mention someone (counted until the marker passes, below).
        if (message->ts_ms >= since_ms || message->seq == record->last_seq || !message->mentions.empty()) {
          // The newest keeps the start of its body: the room's summary shows it.
          if (message->seq == record->last_seq) message->body = std::string(utf8_prefix(message->body, kPreviewBytes));
          else message->body.clear();
          installed.view.emplace_back(std::move(*message));
        }
      }
      if (theirs_entries) {  // edits and reactions rows, under this store's id of the room
        auto entries = from->cursor(*theirs_entries);
        if (!entries) return lmdb_error(errc::unavailable, where, entries.error());
        auto id = writer.room_id_of(name);
        if (!id) return id.error();
        for (auto at = entries->seek(prefix); at && in_room(at->key, record->id); at = entries->get(MDB_NEXT)) {
          std::string key = room_prefix(*id);
          key.append(at->key.substr(kRoomPrefixSize));
          if (lmdb::Status put = txn->put(tables_.entries, key, at->value); !put.ok()) return write_error("install", put);
        }
      }
      if (theirs_reads) {  // a copy from a node before read markers has none
        auto reads = from->cursor(*theirs_reads);
        if (!reads) return lmdb_error(errc::unavailable, where, reads.error());
        for (auto at = reads->seek(prefix); at && in_room(at->key, record->id); at = reads->get(MDB_NEXT)) {
          if (at->value.size() != 8) return make_error(errc::internal, where + ": corrupt read marker in room '" + name + "'");
          MarkRead mark{name, std::string(at->key.substr(kRoomPrefixSize)), get_be64(at->value.data())};
          if (auto done = writer(mark); !done) return done.error();
          installed.view.emplace_back(std::move(mark));
        }
      }
    }
    if (auto reset = writer.reset_log(shard, installed.position, installed.terms); !reset) return reset.error();
    if (auto finished = writer.finish(); !finished) return finished.error();
    if (lmdb::Status commit = txn->commit(); !commit.ok()) return write_error("install", commit);
    for (const auto& name : writer.deleted()) room_ids_.erase(name);
    for (auto& [name, id] : writer.created()) room_ids_.insert_or_assign(std::move(name), id);
    return installed;
  }

  Result<LogRead> log_after(const std::string& shard, std::uint64_t lsn, std::size_t max_entries,
                            std::size_t max_bytes) const {
    auto txn = env_.begin_read();
    if (!txn) return lmdb_error(errc::unavailable, "log read", txn.error());
    auto cursor = txn->cursor(tables_.log);
    if (!cursor) return lmdb_error(errc::unavailable, "log read", cursor.error());
    LogRead read;
    std::size_t bytes = 0;
    for (auto at = cursor->seek(log_key(shard, lsn + 1)); read.entries.size() < max_entries; at = cursor->get(MDB_NEXT)) {
      if (!at) {
        if (at.error().not_found()) break;
        return lmdb_error(errc::unavailable, "log read", at.error());
      }
      if (!in_log(at->key, shard) || at->value.size() < 8) break;
      const std::uint64_t found = get_be64(at->key.data() + shard.size() + 1);
      if (read.entries.empty() && found != lsn + 1) {  // the next one is gone: trimmed
        read.trimmed = true;
        read.kept_from = found;
        break;
      }
      if (!read.entries.empty() && bytes + at->value.size() > max_bytes) break;
      bytes += at->value.size();
      read.entries.push_back(LogEntry{shard, get_be64(at->value.data()), found, std::string(at->value.substr(8))});
    }
    auto position = txn->get(tables_.meta, std::string(kLogPositionPrefix) + shard);
    if (position && position->size() == 16) read.end = get_be64(position->data() + 8);
    // Nothing after `lsn`: fine if `lsn` is the end of the log, trimmed if the log's
    // entries all lie before it were trimmed and it is behind.
    if (read.entries.empty() && !read.trimmed && read.end > lsn) read.trimmed = true;
    return read;
  }

  DataDirLock lock_;  ///< declared before env_: released after the environment is closed
  lmdb::Env env_;
  Tables tables_;
  std::filesystem::path dir_;
  std::size_t max_map_bytes_;
  std::optional<StoreKey> key_;
  // Room name -> id of committed rooms. A deleted room's entry goes when its batch
  // commits (ids are never reused); reads may fill it from what they find committed.
  // Reads and writes share the persistence actor's thread, so no read sees a room
  // between its deletion's commit and the cache's update.
  mutable std::unordered_map<std::string, std::uint32_t> room_ids_;
  /// Held shared by a Reader's read (on its own thread) and exclusively while the map
  /// grows: LMDB remaps the file then, and no transaction of the process may be open.
  mutable std::shared_mutex remap_;

  /// Hot backups running (Reader::backup), so that growing the map can stop them.
  mutable std::mutex backups_mutex_;
  mutable std::vector<std::weak_ptr<BackupStream>> backups_;
};

HistoryStore::Reader::Reader(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Result<MapPage> HistoryStore::Reader::page_maps(const std::string& room, const PageQuery& query) const {
  std::shared_lock reading(impl_->remap_);
  return impl_->page_maps(room, query, false);
}

Result<HistoryStore::Reader::AgeBound> HistoryStore::Reader::age_bound(const std::string& room, std::uint64_t from,
                                                                       std::uint64_t limit,
                                                                       std::uint64_t cutoff_ms) const {
  std::shared_lock reading(impl_->remap_);
  auto read = impl_->read_room(room, false);
  if (!read) return read.error();
  AgeBound bound{from, 0};
  auto at = read->cursor.seek(message_key(read->id, from));
  for (std::uint64_t n = 0; n < limit; ++n, at = read->cursor.get(MDB_NEXT)) {
    if (!at) {
      if (at.error().not_found()) break;
      return lmdb_error(errc::unavailable, "history read", at.error());
    }
    if (!in_room(at->key, read->id)) break;
    std::uint64_t ts = 0;
    if (auto map = is_map(at->value) ? read_message_map(at->value) : std::nullopt) {
      ts = map->ts_ms;
    } else {
      auto message = decode_message(at->key, at->value, room, impl_->tables_.seal);
      if (!message) return message.error();
      ts = message->ts_ms;
    }
    const std::uint64_t seq = get_be64(at->key.data() + kRoomPrefixSize);
    if (ts >= cutoff_ms) return AgeBound{seq, ts};
    bound.seq = seq + 1;
  }
  return bound;
}

Result<std::shared_ptr<BackupStream>> HistoryStore::Reader::backup() const {
  std::lock_guard listed(impl_->backups_mutex_);  // not while the map grows (grow_map)
  auto stream = BackupStream::start(impl_->env_.handle(), impl_->remap_, impl_);
  if (!stream) return stream.error();
  std::erase_if(impl_->backups_, [](const auto& b) { return b.expired(); });
  impl_->backups_.push_back(*stream);
  return stream;
}

Result<HistoryStore::LogRead> HistoryStore::Reader::log_after(const std::string& shard, std::uint64_t lsn,
                                                              std::size_t max_entries, std::size_t max_bytes) const {
  std::shared_lock reading(impl_->remap_);
  return impl_->log_after(shard, lsn, max_entries, max_bytes);
}

std::uint64_t HistoryStore::Reader::used_bytes() const noexcept { return impl_->env_.used_bytes(); }

HistoryStore::Reader HistoryStore::reader() const { return Reader(impl_); }

Result<HistoryStore> HistoryStore::open(const StoreOptions& options) {
  // Before LMDB opens anything: a second node on the directory stops here.
  auto lock = DataDirLock::acquire(options.dir);
  if (!lock) return lock.error();
  lmdb::EnvOptions env_options;
  env_options.map_size = options.initial_map_bytes;
  env_options.max_dbs = kMaxDbs;
  // MDB_NOTLS: read transactions belong to the transaction object, not the thread.
  env_options.flags = MDB_NOTLS | (options.durability == Durability::nosync ? MDB_NOSYNC : 0);
  auto env = lmdb::Env::open(options.dir.string(), env_options);
  if (!env)
    return lmdb_error(errc::unavailable,
                      "history store: cannot open LMDB environment in '" + options.dir.string() + "'",
                      env.error());
  auto impl = std::make_shared<Impl>(std::move(*lock), std::move(*env), options);
  if (Result<void> init = impl->init(); !init) return init.error();
  return HistoryStore(std::move(impl));
}

HistoryStore::HistoryStore(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
HistoryStore::HistoryStore(HistoryStore&&) noexcept = default;
HistoryStore& HistoryStore::operator=(HistoryStore&&) noexcept = default;
HistoryStore::~HistoryStore() = default;

Result<void> HistoryStore::append_batch(std::span<const Record> records) {
  const std::span<const Record> one[] = {records};
  return append_batches(one);
}

Result<void> HistoryStore::append_batches(std::span<const std::span<const Record>> groups) {
  std::size_t count = 0;
  for (const auto& g : groups) count += g.size();
  if (count == 0) return {};
  for (;;) {
    Result<void> applied = impl_->apply_batch(groups);
    if (applied || applied.error().code != errc::storage_full) return applied;
    // MDB_MAP_FULL: the attempt's transaction is aborted; grow the map and retry.
    Result<bool> grown = impl_->grow_map();
    if (!grown) return grown.error();
    if (!*grown)
      return make_error(errc::storage_full,
                        applied.error().message + " (map at its maximum of " +
                            std::to_string(impl_->max_map_bytes_) + " bytes)");
  }
}

Result<Page> HistoryStore::newest(const std::string& room, std::size_t limit) const {
  return impl_->page_backward(room, std::nullopt, limit);
}

Result<Page> HistoryStore::before(const std::string& room, std::uint64_t seq,
                                  std::size_t limit) const {
  return impl_->page_backward(room, seq, limit);
}

Result<Page> HistoryStore::after(const std::string& room, std::uint64_t seq,
                                 std::size_t limit) const {
  return impl_->page_forward(room, seq, limit);
}

Result<MapPage> HistoryStore::page_maps(const std::string& room, const PageQuery& query) const {
  return impl_->page_maps(room, query);
}

Result<HistoryStore::LogRead> HistoryStore::log_after(const std::string& shard, std::uint64_t lsn,
                                                      std::size_t max_entries, std::size_t max_bytes) const {
  return impl_->log_after(shard, lsn, max_entries, max_bytes);
}

Result<std::vector<StoredMessage>> HistoryStore::reconciled() const { return impl_->reconciled(); }

Result<TargetState> HistoryStore::target(const std::string& room, std::uint64_t seq, const std::string& user,
                                         const std::string& key) const {
  return std::move(impl_->targets({TargetQuery{room, seq, user, key}}).front());
}

std::vector<Result<TargetState>> HistoryStore::targets(const std::vector<TargetQuery>& queries) const {
  return impl_->targets(queries);
}

Result<std::uint64_t> HistoryStore::copy_to(const std::filesystem::path& dir) const { return impl_->copy_to(dir); }

Result<HistoryStore::InstalledShard> HistoryStore::install_shard(const std::filesystem::path& dir,
                                                                 const std::string& shard,
                                                                 const std::function<bool(std::string_view)>& in_shard,
                                                                 std::uint64_t since_ms) {
  const std::string where = "the copy in '" + dir.string() + "'";
  lmdb::EnvOptions options;
  options.max_dbs = kMaxDbs;
  options.flags = MDB_RDONLY | MDB_NOLOCK;
  auto copy = lmdb::Env::open(dir.string(), options);
  if (!copy) return lmdb_error(errc::unavailable, where, copy.error());
  for (;;) {
    auto installed = impl_->apply_install(*copy, where, shard, in_shard, since_ms);
    if (installed || installed.error().code != errc::storage_full) return installed;
    Result<bool> grown = impl_->grow_map();  // as append_batches does
    if (!grown) return grown.error();
    if (!*grown) return installed.error();
  }
}

Result<Snapshot> HistoryStore::snapshot(std::uint64_t since_ms) const {
  return impl_->snapshot(since_ms);
}

std::size_t HistoryStore::map_bytes() const noexcept { return impl_ ? impl_->env_.map_size() : 0; }
std::size_t HistoryStore::used_bytes() const noexcept { return impl_ ? impl_->env_.used_bytes() : 0; }
std::size_t HistoryStore::max_map_bytes() const noexcept { return impl_ ? impl_->max_map_bytes_ : 0; }

}  // namespace switchboard::persistence
