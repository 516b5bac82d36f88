// SPDX-License-Identifier: Apache-2.0
#include "tests/e2e/raw_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace fhir::testing {
namespace {

using Clock = std::chrono::steady_clock;

int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

}  // namespace

RawClient::RawClient(uint16_t port, const std::string& from) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, from.c_str(), &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd_, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

void RawClient::shutdownWrite() { ::shutdown(fd_, SHUT_WR); }

RawResponse RawClient::read(int timeout_ms) {
  RawResponse response;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  size_t head_end = std::string::npos;
  size_t body_length = 0;
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        head_end += 4;
        const std::string head = buffer_.substr(0, head_end);
        if (head.size() > 12) response.status = std::atoi(head.c_str() + 9);
        response.status_line = head.substr(0, head.find("\r\n"));
        size_t line = head.find("\r\n") + 2;
        while (line < head.size()) {
          size_t end = head.find("\r\n", line);
          const std::string field = head.substr(line, end - line);
          line = end + 2;
          size_t colon = field.find(':');
          if (colon == std::string::npos) continue;
          std::string name = field.substr(0, colon);
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          size_t value = field.find_first_not_of(' ', colon + 1);
          response.headers[name] = value == std::string::npos ? "" : field.substr(value);
        }
        body_length = response.headers.count("content-length") ? std::stoul(response.headers["content-length"]) : 0;
      }
    }
    if (head_end != std::string::npos && buffer_.size() >= head_end + body_length) {
      response.body = buffer_.substr(head_end, body_length);
      buffer_.erase(0, head_end + body_length);
      // An interim 100 Continue is not the answer.
      if (response.status == 100) return read(msLeft(deadline));
      return response;
    }
    pollfd waiting{fd_, POLLIN, 0};
    if (::poll(&waiting, 1, msLeft(deadline)) <= 0) break;
    char chunk[65536];
    ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got <= 0) break;
    buffer_.append(chunk, static_cast<size_t>(got));
  }
  return RawResponse{};
}

bool RawClient::closedByPeer(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pollfd waiting{fd_, POLLIN, 0};
    if (::poll(&waiting, 1, msLeft(deadline)) <= 0) return false;
    char chunk[4096];
    ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got == 0) return true;
    if (got < 0) return errno == ECONNRESET;
  }
}

RawResponse rawRequest(uint16_t port, const std::string& bytes, int timeout_ms, const std::string& from) {
  RawClient client(port, from);
  if (!client.connected() || !client.send(bytes)) return RawResponse{};
  return client.read(timeout_ms);
}

}  // namespace fhir::testing
