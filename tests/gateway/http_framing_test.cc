// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/http_framing.h"

#include <gtest/gtest.h>

namespace fhir::gateway::http {
namespace {

TEST(HttpFramingTest, FindsTheEndOfTheHeadWithCrlfOrLf) {
  EXPECT_FALSE(headEnd("GET / HTTP/1.1\r\nHost: x\r\n").has_value());
  EXPECT_EQ(headEnd("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), 27u);
  EXPECT_EQ(headEnd("GET / HTTP/1.1\nHost: x\n\nbody"), 24u);
}

TEST(HttpFramingTest, ParsesAHeadWithLowerCasedNamesAndTrimmedValues) {
  auto head = parseHead("POST /ingest/econsult?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type:  application/json \r\n\r\n");
  ASSERT_TRUE(head.ok()) << head.message();
  EXPECT_EQ(head->method, "POST");
  EXPECT_EQ(head->target, "/ingest/econsult?x=1");
  EXPECT_EQ(head->minor_version, 1);
  ASSERT_NE(head->header("content-type"), nullptr);
  EXPECT_EQ(*head->header("content-type"), "application/json");
  EXPECT_EQ(head->header("accept"), nullptr);
}

TEST(HttpFramingTest, RefusesMalformedHeads) {
  EXPECT_FALSE(parseHead("GET /\r\n\r\n").ok());
  EXPECT_FALSE(parseHead("GET / HTTP/2.0\r\n\r\n").ok());
  EXPECT_FALSE(parseHead("GET / HTTP/1.1\r\nNo colon here\r\n\r\n").ok());
  EXPECT_FALSE(parseHead("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n").ok());
  EXPECT_FALSE(parseHead("GET / HTTP/1.1\r\nBad Name: b\r\n\r\n").ok());
  EXPECT_FALSE(parseHead("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n").ok());
  EXPECT_FALSE(parseHead("\r\n\r\n").ok());
}

// Issue 14: another major version that is well-formed is told apart (the listener answers 505);
// a malformed version or a non-ASCII target is a plain error (400), and none echo the request.
TEST(HttpFramingTest, TellsAnUnsupportedVersionFromAMalformedOne) {
  for (const char* version : {"HTTP/2.0", "HTTP/9.1", "HTTP/0.9"}) {
    auto head = parseHead(std::string("GET / ") + version + "\r\nHost: a\r\n\r\n");
    ASSERT_FALSE(head.ok()) << version;
    EXPECT_TRUE(head.message().starts_with(kUnsupportedVersion)) << head.message();
    EXPECT_NE(head.message().find(version), std::string::npos) << head.message();
  }
  for (const char* version : {"HTTP/9.x", "HTTP/11.", "HTTP11/.", "HTTP/1.10", "http/1.1", "HTTP/1.", "HTTP/\xff.1"}) {
    auto head = parseHead(std::string("GET / ") + version + "\r\nHost: a\r\n\r\n");
    ASSERT_FALSE(head.ok()) << version;
    EXPECT_EQ(head.message(), "the protocol is not HTTP/1.x");
  }
  EXPECT_EQ(parseHead("GET /a\xc3\xa9 HTTP/1.1\r\n\r\n").message(), "the request target contains a byte that is not ASCII");
  auto ok = parseHead("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(ok->minor_version, 0);
}

TEST(HttpFramingTest, DecidesTheBodyFramingAndRefusesAmbiguousOnes) {
  auto framing = [](const std::string& headers) {
    auto head = parseHead("POST / HTTP/1.1\r\n" + headers + "\r\n");
    EXPECT_TRUE(head.ok()) << head.message();
    return bodyFraming(*head);
  };
  EXPECT_EQ(framing("")->kind, BodyFraming::Kind::kNone);
  EXPECT_EQ(framing("Content-Length: 12\r\n")->length, 12u);
  EXPECT_EQ(framing("Content-Length: 12, 12\r\n")->length, 12u);
  EXPECT_EQ(framing("Transfer-Encoding: Chunked\r\n")->kind, BodyFraming::Kind::kChunked);
  EXPECT_EQ(framing("Content-Length: 12\r\nTransfer-Encoding: chunked\r\n").message(),
            "the request has both Content-Length and Transfer-Encoding");
  EXPECT_FALSE(framing("Content-Length: 12\r\nContent-Length: 13\r\n").ok());
  EXPECT_FALSE(framing("Content-Length: -1\r\n").ok());
  EXPECT_FALSE(framing("Content-Length: 0x10\r\n").ok());
  EXPECT_FALSE(framing("Content-Length: 99999999999999999999\r\n").ok());
  EXPECT_FALSE(framing("Transfer-Encoding: gzip, chunked\r\n").ok());
}

TEST(HttpFramingTest, KeepAliveFollowsTheVersionAndConnectionHeader) {
  EXPECT_TRUE(keepsAlive(*parseHead("GET / HTTP/1.1\r\n\r\n")));
  EXPECT_FALSE(keepsAlive(*parseHead("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")));
  EXPECT_FALSE(keepsAlive(*parseHead("GET / HTTP/1.0\r\n\r\n")));
  EXPECT_TRUE(keepsAlive(*parseHead("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")));
}

std::string decodeAll(ChunkedDecoder& decoder, std::string_view in, size_t piece) {
  std::string out;
  char buffer[7];
  while (!in.empty() && !decoder.done() && !decoder.failed()) {
    std::string_view part = in.substr(0, std::min(piece, in.size()));
    auto step = decoder.decode(part, buffer, sizeof buffer);
    out.append(buffer, step.produced);
    in.remove_prefix(step.consumed);
  }
  return out;
}

TEST(HttpFramingTest, DecodesChunkedBodiesFedInPiecesOfAnySize) {
  const std::string body = "5;ext=1\r\nhello\r\n0B\r\n, world, ok\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (size_t piece = 1; piece <= body.size(); ++piece) {
    ChunkedDecoder decoder;
    EXPECT_EQ(decodeAll(decoder, body, piece), "hello, world, ok") << piece;
    EXPECT_TRUE(decoder.done()) << piece;
  }
  ChunkedDecoder decoder;
  auto step = decoder.decode(body, nullptr, 0);
  EXPECT_EQ(step.produced, 0u);
}

TEST(HttpFramingTest, ChunkedBodiesWithoutTheirLastChunkAreNotDone) {
  ChunkedDecoder decoder;
  EXPECT_EQ(decodeAll(decoder, "5\r\nhello\r\n", 100), "hello");
  EXPECT_FALSE(decoder.done());
  EXPECT_FALSE(decoder.failed());
}

TEST(HttpFramingTest, RefusesBrokenChunks) {
  for (const char* broken : {"z\r\n", "5\r\nhelloX\r\n", "\r\n", "fffffffffffffffff\r\n"}) {
    ChunkedDecoder decoder;
    decodeAll(decoder, broken, 100);
    EXPECT_TRUE(decoder.failed()) << broken;
    EXPECT_FALSE(decoder.error().empty());
  }
  ChunkedDecoder endless;
  decodeAll(endless, std::string(ChunkedDecoder::kMaxLineBytes + 1, '1'), 100);
  EXPECT_TRUE(endless.failed());
}

// Regression (issue 14): `?profile=%zz` was a 500 (std::stoi threw); a bad escape is an error value.
TEST(HttpFramingTest, PercentDecodingRefusesBadEscapes) {
  EXPECT_EQ(*percentDecode("a%20b+c", true), "a b c");
  EXPECT_EQ(*percentDecode("a%2Fb+c", false), "a/b+c");
  EXPECT_FALSE(percentDecode("%zz", true).has_value());
  EXPECT_FALSE(percentDecode("%4", true).has_value());
  EXPECT_FALSE(percentDecode("abc%", true).has_value());
  auto query = parseQuery("profile=%zz");
  ASSERT_FALSE(query.ok());
  EXPECT_EQ(query.message(), "the value of query parameter 'profile' has a bad percent-escape ('%zz')");
  auto good = parseQuery("a=1&&b=x%26y&flag");
  ASSERT_TRUE(good.ok());
  ASSERT_EQ(good->size(), 3u);
  EXPECT_EQ((*good)[1].second, "x&y");
  EXPECT_EQ((*good)[2].first, "flag");
}

TEST(HttpFramingTest, SplitsTargetsIntoDecodedSegments) {
  auto target = parseTarget("/fhir//Patient/%24validate?profile=x#frag");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->path, "/fhir//Patient/%24validate");
  EXPECT_EQ(target->segments, (std::vector<std::string>{"fhir", "Patient", "$validate"}));
  EXPECT_EQ(target->query, "profile=x");
  EXPECT_FALSE(parseTarget("http://x/y").ok());
  EXPECT_FALSE(parseTarget("/a/%g0").ok());
}

}  // namespace
}  // namespace fhir::gateway::http
