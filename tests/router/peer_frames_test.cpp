// Frames between nodes (router/peer_frames.hpp): what a node sends is read back the
// same, and a frame from another node that is cut short, or malformed, is refused
// rather than misread.
#include <gtest/gtest.h>

#include "switchboard/router/peer_frames.hpp"

using namespace switchboard::router;

TEST(PeerFrames, ReplicationAndFailoverBodiesRoundTrip) {
  // The decoded views point into the frame: it is kept while they are read.
  const std::string kept_body = encode_kept("s1", 3, 4);
  auto kept = decode_kept(kept_body);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->shard, "s1");
  EXPECT_EQ(kept->last_term, 3u);
  EXPECT_EQ(kept->term, 4u);

  for (bool pre : {true, false}) {
    const std::string request_body = encode_vote_request({"s2", pre, 7, std::uint64_t{1} << 40});
    auto request = decode_vote_request(request_body);
    ASSERT_TRUE(request);
    EXPECT_EQ(request->shard, "s2");
    EXPECT_EQ(request->pre, pre);
    EXPECT_EQ(request->last_term, 7u);
    EXPECT_EQ(request->last_lsn, std::uint64_t{1} << 40);
    for (bool granted : {true, false}) {
      const std::string vote_body = encode_vote({"s2", pre, granted, 9});
      auto vote = decode_vote(vote_body);
      ASSERT_TRUE(vote);
      EXPECT_EQ(vote->pre, pre);
      EXPECT_EQ(vote->granted, granted);
      EXPECT_EQ(vote->term, 9u);
    }
  }
  const std::string primary_body = encode_primary("s3", "node-c", 1024, 2048);
  auto primary = decode_primary(primary_body);
  ASSERT_TRUE(primary);
  EXPECT_EQ(primary->shard, "s3");
  EXPECT_EQ(primary->node, "node-c");
  EXPECT_EQ(primary->trimmed, 1024u);
  EXPECT_EQ(primary->committed, 2048u);

  const std::string frame_bytes = encode_peer(PeerKind::vote_request, 5, encode_vote_request({"s1", true, 1, 2}));
  auto frame = decode_peer(frame_bytes);
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->kind, PeerKind::vote_request);
  EXPECT_EQ(frame->corr, 5u);
  for (PeerKind kind : {PeerKind::diverged, PeerKind::vote, PeerKind::primary})
    EXPECT_TRUE(decode_peer(encode_peer(kind, 1, "s1"))) << static_cast<char>(kind);
}

TEST(PeerFrames, CutShortOrMalformedBodiesAreRefused) {
  const std::string kept = encode_kept("s1", 3, 4);
  EXPECT_FALSE(decode_kept("s1")) << "a bare shard name";
  EXPECT_FALSE(decode_kept(kept.substr(0, kept.size() - 1)));
  EXPECT_FALSE(decode_kept(kept + "x"));
  EXPECT_FALSE(decode_kept(kept.substr(2))) << "no shard name";

  std::string request = encode_vote_request({"s1", true, 1, 2});
  EXPECT_FALSE(decode_vote_request(request.substr(0, request.size() - 1)));
  request[3] = 'x';  // neither 'p' nor 'v'
  EXPECT_FALSE(decode_vote_request(request));

  std::string vote = encode_vote({"s1", false, true, 2});
  vote[4] = 2;  // granted is 0 or 1
  EXPECT_FALSE(decode_vote(vote));
  EXPECT_FALSE(decode_vote("s1"));

  const std::string primary = encode_primary("s1", "b", 0, 0);
  EXPECT_FALSE(decode_primary(primary.substr(0, primary.size() - 1)));
  EXPECT_FALSE(decode_primary(encode_primary("s1", "", 0, 0))) << "no node name";
  EXPECT_FALSE(decode_primary(std::string("s1\0b", 4))) << "no trim point";
  EXPECT_FALSE(decode_peer("Z" + std::string(8, '\0'))) << "an unknown kind";
}

TEST(PeerFrames, CopyChunksAndTheirAcknowledgementsRoundTripAndRefuseMalformedBodies) {
  const std::string bytes("\0\1binary\xff", 9);
  const std::string body = encode_chunk({"s2", 7, 1u << 20, bytes});
  auto chunk = decode_chunk(body);
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->shard, "s2");
  EXPECT_EQ(chunk->copy, 7u);
  EXPECT_EQ(chunk->size, 1u << 20);
  EXPECT_EQ(chunk->data, bytes) << "bytes with NULs pass whole";
  EXPECT_TRUE(decode_chunk(encode_chunk({"s2", 7, 0, ""}))) << "an empty chunk is well formed (the replica drops it)";
  EXPECT_FALSE(decode_chunk(body.substr(0, 3 + 15))) << "cut inside the size";
  EXPECT_FALSE(decode_chunk(body.substr(2))) << "no shard name";

  const std::string had_frame = encode_had("s2", 9);  // the shard's name is read in place
  auto had = decode_had(had_frame);
  ASSERT_TRUE(had);
  EXPECT_EQ(had->first, "s2");
  EXPECT_EQ(had->second, 9u);
  EXPECT_FALSE(decode_had(encode_had("s2", 9) + "x"));
  EXPECT_FALSE(decode_had("s2"));
  for (PeerKind kind : {PeerKind::copy, PeerKind::chunk, PeerKind::had})
    EXPECT_TRUE(decode_peer(encode_peer(kind, 1, "s1"))) << static_cast<char>(kind);
}

TEST(PeerFrames, ALogEntryCarriesItsPrimarysTermAndItsOwnAndNoEntryIsOfALaterTermThanItsPrimary) {
  const std::string body = encode_shipped("s1", 5, 3, 2, "records");
  auto shipped = decode_shipped(body);
  ASSERT_TRUE(shipped);
  EXPECT_EQ(shipped->shard, "s1");
  EXPECT_EQ(shipped->primary_term, 5u);
  EXPECT_EQ(shipped->term, 3u) << "written in term 3, sent by the primary of term 5";
  EXPECT_EQ(shipped->prev_term, 2u);
  EXPECT_EQ(shipped->records, "records");
  EXPECT_FALSE(decode_shipped(encode_shipped("s1", 2, 3, 2, ""))) << "an entry of a term past its primary's";
  EXPECT_FALSE(decode_shipped(body.substr(0, 3 + 20))) << "cut inside the terms";
}
