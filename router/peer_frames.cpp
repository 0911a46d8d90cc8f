#include "switchboard/router/peer_frames.hpp"

namespace switchboard::router {

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
    case PeerKind::gap: break;
    default: return std::nullopt;
  }
  std::uint64_t corr = 0;
  for (std::size_t i = 1; i < kPeerHeader; ++i) corr = (corr << 8) | static_cast<unsigned char>(frame[i]);
  return PeerFrame{kind, corr, frame.substr(kPeerHeader)};
}

std::string encode_shipped(std::string_view shard, std::uint64_t term, std::string_view records) {
  std::string out;
  out.reserve(shard.size() + 9 + records.size());
  out.append(shard).push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((term >> shift) & 0xff));
  out.append(records);
  return out;
}

std::optional<Shipped> decode_shipped(std::string_view body) {
  const auto nul = body.find('\0');
  if (nul == std::string_view::npos || body.size() < nul + 9) return std::nullopt;
  std::uint64_t term = 0;
  for (std::size_t i = nul + 1; i < nul + 9; ++i) term = (term << 8) | static_cast<unsigned char>(body[i]);
  return Shipped{body.substr(0, nul), term, body.substr(nul + 9)};
}

}  // namespace switchboard::router
