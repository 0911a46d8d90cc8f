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
//       encode_kept (the shard, that entry's term, the term the replica is in);
//   'G' gap, replica -> primary: corr = the last lsn the replica has received, body =
//       the shard's name: send the entries after it;
//   'D' diverged, primary -> replica: corr = an lsn, body = the shard's name: the
//       replica's entries after that lsn are not the primary's; it drops them.
// Failover (docs/REPLICATION.md), between the members of a shard:
//   'V' vote request, candidate -> member: corr = the term asked for, body =
//       encode_vote_request;
//   'Y' vote, member -> candidate: corr = the term asked for, body = encode_vote;
//   'W' primary, primary -> every node: corr = its term, body = encode_primary (the
//       shard, a NUL, the primary's name, a NUL, the 8-byte lsn its log is trimmed to,
//       the 8-byte lsn its log is committed to).
// Catching up from a copy of the primary's store (docs/REPLICATION.md):
//   'C' copy, replica -> primary: corr = 0, body = the shard's name: the replica cannot
//       take the log from where it is, and asks for a copy;
//   'S' store chunk, primary -> replica: corr = the chunk's offset in the copy, body =
//       encode_chunk (the shard, the copy's id and size, the bytes);
//   'H' had, replica -> primary: corr = how many bytes of the copy the replica has
//       written, body = encode_had (the shard, the copy's id).
// The request and reply frames are carried as they are, so a forwarded request costs
// one copy and no re-encoding, and the owner checks it exactly as if a client had
// sent it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace switchboard::router {

enum class PeerKind : char { forward = 'F', reply = 'R', ping = 'P', pong = 'O', accept = 'A', refuse = 'X',
                             bye = 'B', log_entry = 'L', kept = 'K', gap = 'G', diverged = 'D',
                             vote_request = 'V', vote = 'Y', primary = 'W', copy = 'C', chunk = 'S', had = 'H' };

struct PeerFrame {
  PeerKind kind;
  std::uint64_t corr = 0;
  std::string_view body;  ///< points into the frame it was read from
};

inline constexpr std::size_t kPeerHeader = 9;

std::string encode_peer(PeerKind kind, std::uint64_t corr, std::string_view body = {});

/// The body of a 'L' frame: the shard's name, a NUL, the 8-byte big-endian term the
/// primary is in, the 8-byte term of the entry (the term it was written in: an earlier
/// one for an entry a new primary brings a replica up to date with), the 8-byte term of
/// the entry before it in the primary's log (0 for the first), then the entry's records
/// (actors/store_protocol.hpp: encode_records). A replica takes an entry only from a
/// primary in its term or a later one, and only if its own log ends as the primary's
/// does before it.
struct Shipped {
  std::string_view shard;
  std::uint64_t primary_term = 0, term = 0, prev_term = 0;
  std::string_view records;
};
std::string encode_shipped(std::string_view shard, std::uint64_t primary_term, std::uint64_t term,
                           std::uint64_t prev_term, std::string_view records);
/// nullopt: no NUL, too short for the terms, or an entry of a term past its primary's.
std::optional<Shipped> decode_shipped(std::string_view body);
/// 'K': the shard, the term of the replica's last durable entry, and its current term.
struct Kept {
  std::string_view shard;
  std::uint64_t last_term = 0, term = 0;
};
std::string encode_kept(std::string_view shard, std::uint64_t last_term, std::uint64_t term);
std::optional<Kept> decode_kept(std::string_view body);

/// 'V': a candidate's log end, and whether this is a pre-vote (asks "would you vote for
/// me?" and changes nothing) or the vote itself.
struct VoteRequest {
  std::string_view shard;
  bool pre = false;
  std::uint64_t last_term = 0, last_lsn = 0;
};
std::string encode_vote_request(const VoteRequest& request);
std::optional<VoteRequest> decode_vote_request(std::string_view body);

/// 'Y': the answer, and the term the voter is in.
struct Vote {
  std::string_view shard;
  bool pre = false, granted = false;
  std::uint64_t term = 0;
};
std::string encode_vote(const Vote& vote);
std::optional<Vote> decode_vote(std::string_view body);

/// 'W': the shard, its primary's node name, how far the primary has trimmed the shard's
/// log (every member has the entries up to there), and how far its log is the shard's
/// for good (on a majority, with an entry of the primary's term: a replica shows no
/// message past there).
struct PrimaryIs {
  std::string_view shard, node;
  std::uint64_t trimmed = 0, committed = 0;
};
std::string encode_primary(std::string_view shard, std::string_view node, std::uint64_t trimmed,
                           std::uint64_t committed);
std::optional<PrimaryIs> decode_primary(std::string_view body);

/// 'S': the shard, a NUL, the copy's 8-byte id and 8-byte size, then the chunk's bytes.
struct Chunk {
  std::string_view shard;
  std::uint64_t copy = 0, size = 0;
  std::string_view data;
};
std::string encode_chunk(const Chunk& chunk);
std::optional<Chunk> decode_chunk(std::string_view body);
/// 'H': the shard, a NUL, the copy's 8-byte id.
std::string encode_had(std::string_view shard, std::uint64_t copy);
/// The shard and the copy's id; nullopt: malformed.
std::optional<std::pair<std::string_view, std::uint64_t>> decode_had(std::string_view body);

/// nullopt: shorter than the header, or an unknown kind.
std::optional<PeerFrame> decode_peer(std::string_view frame);

}  // namespace switchboard::router
