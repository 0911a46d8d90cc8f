// Messages between a chat shard and its persistence actor (internal to a node; the
// client protocol is in transport/). msgpack frames like everything else, so the two
// can sit on inproc in one process or on tcp in two.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "switchboard/common/error.hpp"
#include "switchboard/persistence/history_store.hpp"

namespace switchboard::actors::store {

/// chat -> persistence: store these records in one group commit.
struct Append {
  std::uint64_t batch = 0;
  /// The sender's previous batch still in flight when this one was sent (0: none).
  /// If that batch was not stored, this one is refused too: its seqs follow on.
  std::uint64_t after = 0;
  std::vector<persistence::Record> records;
};
/// persistence -> chat: the batch is durable (error.code == errc::ok) or nothing of it
/// was stored.
struct Appended {
  std::uint64_t batch = 0;
  Error error{errc::ok, {}};
};
/// chat -> persistence: read a history page and answer with the client's reply frame.
struct Read {
  enum class Mode : std::uint8_t { newest = 0, before = 1, after = 2 };
  std::uint64_t corr = 0;        ///< chat's correlation id
  std::uint64_t reply_id = 0;    ///< the client's request id, for the reply frame
  std::string room;
  Mode mode = Mode::newest;
  std::uint64_t seq = 0;
  std::uint32_t limit = 0;
};
/// persistence -> chat: the encoded client reply (history or error) for `corr`.
struct Page {
  std::uint64_t corr = 0;
  std::string reply_frame;
};

using Message = std::variant<Append, Appended, Read, Page>;

std::string encode(const Message& message);
/// Errors: bad_frame / bad_field if the frame is not one of the messages above.
Result<Message> decode(std::string_view frame);

}  // namespace switchboard::actors::store
