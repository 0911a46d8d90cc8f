#include "switchboard/router/peer_frames.hpp"

namespace switchboard::router {
namespace {

void append_be64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
std::uint64_t read_be64(std::string_view in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}
std::string shard_head(std::string_view shard) {
  std::string out(shard);
  out.push_back('\0');
  return out;
}
/// The shard's name and what follows its NUL, if that is `size` bytes long (any size
/// when `size` is npos).
std::optional<std::pair<std::string_view, std::string_view>> split_shard(std::string_view body,
                                                                         std::size_t size = std::string_view::npos) {
  const auto nul = body.find('\0');
  if (nul == std::string_view::npos || nul == 0) return std::nullopt;
  const auto rest = body.substr(nul + 1);
  if (size != std::string_view::npos && rest.size() != size) return std::nullopt;
  return std::pair{body.substr(0, nul), rest};
}

}  // namespace

std::string encode_kept(std::string_view shard, std::uint64_t last_term, std::uint64_t term) {
  std::string out = shard_head(shard);
  append_be64(out, last_term);
  append_be64(out, term);
  return out;
}

std::optional<Kept> decode_kept(std::string_view body) {
  auto split = split_shard(body, 16);
  if (!split) return std::nullopt;
  return Kept{split->first, read_be64(split->second), read_be64(split->second.substr(8))};
}

std::string encode_vote_request(const VoteRequest& request) {
  std::string out = shard_head(request.shard);
  out.push_back(request.pre ? 'p' : 'v');
  append_be64(out, request.last_term);
  append_be64(out, request.last_lsn);
  return out;
}

std::optional<VoteRequest> decode_vote_request(std::string_view body) {
  auto split = split_shard(body, 17);
  if (!split || (split->second[0] != 'p' && split->second[0] != 'v')) return std::nullopt;
  return VoteRequest{split->first, split->second[0] == 'p', read_be64(split->second.substr(1)),
                     read_be64(split->second.substr(9))};
}

std::string encode_vote(const Vote& vote) {
  std::string out = shard_head(vote.shard);
  out.push_back(vote.pre ? 'p' : 'v');
  out.push_back(vote.granted ? 1 : 0);
  append_be64(out, vote.term);
  return out;
}

std::optional<Vote> decode_vote(std::string_view body) {
  auto split = split_shard(body, 10);
  if (!split || (split->second[0] != 'p' && split->second[0] != 'v') || static_cast<unsigned char>(split->second[1]) > 1)
    return std::nullopt;
  return Vote{split->first, split->second[0] == 'p', split->second[1] == 1, read_be64(split->second.substr(2))};
}

std::string encode_primary(std::string_view shard, std::string_view node, std::uint64_t trimmed,
                           std::uint64_t committed) {
  std::string out = shard_head(shard);
  out.append(node).push_back('\0');
  append_be64(out, trimmed);
  append_be64(out, committed);
  return out;
}

std::optional<PrimaryIs> decode_primary(std::string_view body) {
  auto split = split_shard(body);
  if (!split || split->second.size() < 18) return std::nullopt;
  const auto rest = split->second;
  const auto node = rest.substr(0, rest.size() - 17);
  if (node.empty() || node.find('\0') != std::string_view::npos || rest[rest.size() - 17] != '\0') return std::nullopt;
  return PrimaryIs{split->first, node, read_be64(rest.substr(rest.size() - 16)), read_be64(rest.substr(rest.size() - 8))};
}

std::string encode_chunk(const Chunk& chunk) {
  std::string out = shard_head(chunk.shard);
  append_be64(out, chunk.copy);
  append_be64(out, chunk.size);
  out.append(chunk.data);
  return out;
}

std::optional<Chunk> decode_chunk(std::string_view body) {
  auto split = split_shard(body);
  if (!split || split->second.size() < 16) return std::nullopt;
  return Chunk{split->first, read_be64(split->second), read_be64(split->second.substr(8)), split->second.substr(16)};
}

std::string encode_had(std::string_view shard, std::uint64_t copy) {
  std::string out = shard_head(shard);
  append_be64(out, copy);
  return out;
}

std::optional<std::pair<std::string_view, std::uint64_t>> decode_had(std::string_view body) {
  auto split = split_shard(body, 8);
  if (!split) return std::nullopt;
  return std::pair{split->first, read_be64(split->second)};
}

std::string encode_peer(PeerKind kind, std::uint64_t corr, std::string_view body) {
  std::string out;
  out.reserve(kPeerHeader + body.size());
  out.push_back(static_cast<char>(kind));
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((corr >> shift) & 0xff));
  out.append(body);
  return out;
}

std::optional<PeerFrame> decode_peer(std::string_view frame) {
  if (frame.size() < kPeerHeader) return std::nullopt;
  const auto kind = static_cast<PeerKind>(frame[0]);
  switch (kind) {
    case PeerKind::forward:
    case PeerKind::reply:
    case PeerKind::ping:
    case PeerKind::pong:
    case PeerKind::accept:
    case PeerKind::refuse:
    case PeerKind::bye:
    case PeerKind::log_entry:
    case PeerKind::kept:
    case PeerKind::gap:
    case PeerKind::diverged:
    case PeerKind::vote_request:
    case PeerKind::vote:
    case PeerKind::primary:
    case PeerKind::copy:
    case PeerKind::chunk:
    case PeerKind::had: break;
    default: return std::nullopt;
  }
  std::uint64_t corr = 0;
  for (std::size_t i = 1; i < kPeerHeader; ++i) corr = (corr << 8) | static_cast<unsigned char>(frame[i]);
  return PeerFrame{kind, corr, frame.substr(kPeerHeader)};
}

std::string encode_shipped(std::string_view shard, std::uint64_t primary_term, std::uint64_t term,
                           std::uint64_t prev_term, std::string_view records) {
  std::string out;
  out.reserve(shard.size() + 25 + records.size());
  out.append(shard).push_back('\0');
  append_be64(out, primary_term);
  append_be64(out, term);
  append_be64(out, prev_term);
  out.append(records);
  return out;
}

std::optional<Shipped> decode_shipped(std::string_view body) {
  const auto nul = body.find('\0');
  if (nul == std::string_view::npos || body.size() < nul + 25) return std::nullopt;
  Shipped shipped{body.substr(0, nul), read_be64(body.substr(nul + 1)), read_be64(body.substr(nul + 9)),
                  read_be64(body.substr(nul + 17)), body.substr(nul + 25)};
  if (shipped.term > shipped.primary_term) return std::nullopt;
  return shipped;
}

}  // namespace switchboard::router
