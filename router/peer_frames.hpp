// Frames between nodes (docs/PROTOCOL.md section 9), on a node's peer ROUTER and the
// DEALERs the other nodes connect to it.
//
// One frame: a kind byte, an 8-byte big-endian correlation number, then the body.
//   'F' forward: body = a client request frame, unchanged; answered with
//   'R' reply:   body = the reply frame, unchanged (it echoes the client's own id);
//   'P' ping / 'O' pong: no body (liveness, see router/peers.hpp);
//   'A' accept / 'X' refuse: a publish hook's verdict on a forwarded publish; the
//       body of 'X' is the reason, UTF-8 (actors/service.hpp);
//   'B' bye: no body; the sender is stopping and reads no more requests: take it as
//       down at once rather than after missed heartbeats.
// Replication of a shard's log (docs/REPLICATION.md), between its primary and replicas:
//   'L' log entry, primary -> replica: corr = the entry's lsn, body = encode_shipped;
//   'K' kept, replica -> primary: corr = the last lsn the replica has durably, body =
//       the shard's name;
//   'G' gap, replica -> primary: corr = the last lsn the replica has received, body =
//       the shard's name: send the entries after it.
// The request and reply frames are carried as they are, so a forwarded request costs
// one copy and no re-encoding, and the owner checks it exactly as if a client had
// sent it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchboard::router {

enum class PeerKind : char { forward = 'F', reply = 'R', ping = 'P', pong = 'O', accept = 'A', refuse = 'X',
                             bye = 'B', log_entry = 'L', kept = 'K', gap = 'G' };

struct PeerFrame {
  PeerKind kind;
  std::uint64_t corr = 0;
  std::string_view body;  ///< points into the frame it was read from
};

inline constexpr std::size_t kPeerHeader = 9;

std::string encode_peer(PeerKind kind, std::uint64_t corr, std::string_view body = {});

/// The body of a 'L' frame: the shard's name, a NUL, the 8-byte big-endian term, then
/// the entry's records (actors/store_protocol.hpp: encode_records).
struct Shipped {
  std::string_view shard;
  std::uint64_t term = 0;
  std::string_view records;
};
std::string encode_shipped(std::string_view shard, std::uint64_t term, std::string_view records);
/// nullopt: no NUL, or too short for the term.
std::optional<Shipped> decode_shipped(std::string_view body);
/// nullopt: shorter than the header, or an unknown kind.
std::optional<PeerFrame> decode_peer(std::string_view frame);

}  // namespace switchboard::router
