// SPDX-License-Identifier: Apache-2.0
// Fan-out benchmark (docs/BENCHMARKS.md, section Delivery): a running fhir-gateway, N minimal
// loopback subscribers and an open-loop claim load.
//
//  1. N receivers on 127.0.0.1 (one epoll thread, HTTP/1.1 keep-alive, every request answered
//     200 at once, nothing stored but the numbers and a latency per notification).
//  2. N topic-based Subscriptions on `claim-received`, one per receiver; waits for every
//     handshake.
//  3. Claims are ingested at a fixed rate, open loop: every `--batch` claims form one
//     lakeshore-medicaid CSV file posted at t0 + i·batch/rate, whatever the server does.
//  4. After the load, waits until every notification arrived (or 60 s) and prints one JSON line.
//
// With `--backlog`, the receivers answer 503 while the claims are ingested (as fast as the
// gateway takes them), so the outbox fills up; then they answer 200 and the figure is the drain
// rate: distinct notifications from the first accepted one to the last, per second. That is the
// delivery worker's capacity, whatever the ingest rate this machine reaches.
//
// Commit-to-receipt latency: each notification carries the `notification-event` `timestamp`
// (valueInstant, milliseconds) that the gateway writes inside the ingest transaction, before its
// COMMIT; the receiver subtracts it from its own clock (same machine, same clock). The figure is
// therefore an upper bound of commit-to-receipt (it includes the commit itself), to ±1 ms.
//
//   fanout_bench --port GATEWAY_PORT [--subscribers 10] [--rate 500] [--seconds 20]
//                [--batch 10] [--payload id-only|full-resource|empty] [--senders 8]

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int port = 8080;
  int subscribers = 10;
  double rate = 500;
  double seconds = 20;
  int batch = 10;
  int senders = 8;
  std::string payload = "id-only";
  bool backlog = false;
};

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2026-11-24T21:11:55.123Z" -> milliseconds since the epoch; -1 when malformed.
int64_t instantMs(const char* text) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) != 7) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// What one receiver saw. Numbers are X-Event-Number values of event notifications.
struct ReceiverStats {
  int64_t handshakes = 0;
  int64_t notifications = 0;  // distinct numbers
  int64_t duplicates = 0;
  int64_t out_of_order = 0;  // a number arrived below one already seen (and was new)
  int64_t highest = 0;
  std::set<int64_t> numbers;
  std::vector<int64_t> latencies_ms;
  int64_t first_ms = 0;
  int64_t last_ms = 0;
};

// N HTTP/1.1 listeners served by one epoll thread.
class Receivers {
 public:
  explicit Receivers(int count) : stats_(static_cast<size_t>(count)) {
    epoll_ = epoll_create1(0);
    for (int i = 0; i < count; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd, 128) != 0) {
        std::perror("fanout_bench: listen");
        std::exit(2);
      }
      socklen_t length = sizeof(address);
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
      ports_.push_back(ntohs(address.sin_port));
      add(fd, Conn{fd, i, true, {}});
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~Receivers() {
    stop_ = true;
    thread_.join();
  }

  uint16_t port(int i) const { return ports_[static_cast<size_t>(i)]; }
  // While refusing, event notifications are answered 503 and not counted.
  void refuse(bool refusing) { refusing_ = refusing; }

  template <typename F>
  auto withStats(F f) {
    std::lock_guard lock(mutex_);
    return f(stats_);
  }

 private:
  struct Conn {
    int fd;
    int receiver;
    bool listening;
    std::string in;
  };

  void add(int fd, Conn conn) {
    conns_[fd] = std::move(conn);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
  }

  void close(int fd) {
    epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns_.erase(fd);
  }

  void loop() {
    epoll_event events[64];
    char buffer[65536];
    while (!stop_) {
      const int ready = epoll_wait(epoll_, events, 64, 100);
      for (int e = 0; e < ready; ++e) {
        const int fd = events[e].data.fd;
        auto found = conns_.find(fd);
        if (found == conns_.end()) continue;
        if (found->second.listening) {
          const int receiver = found->second.receiver;
          for (int client; (client = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
            int one = 1;
            setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            add(client, Conn{client, receiver, false, {}});
          }
          continue;
        }
        bool closed = false;
        for (;;) {
          const ssize_t n = read(fd, buffer, sizeof(buffer));
          if (n > 0) {
            found->second.in.append(buffer, static_cast<size_t>(n));
            continue;
          }
          closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
          break;
        }
        serve(found->second);
        if (closed) close(fd);
      }
    }
    for (auto& [fd, conn] : conns_) ::close(fd);
  }

  // Answers every complete request in the connection's buffer.
  void serve(Conn& conn) {
    static const char kAnswer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    static const char kRefusal[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    for (;;) {
      const size_t end = conn.in.find("\r\n\r\n");
      if (end == std::string::npos) return;
      const std::string head = lower(conn.in.substr(0, end));
      size_t length = 0;
      if (size_t at = head.find("\ncontent-length:"); at != std::string::npos) length = std::stoul(head.substr(at + 16));
      if (conn.in.size() < end + 4 + length) return;
      const bool refused = refusing_ && head.find("\nx-event-number:") != std::string::npos;
      if (!refused) record(conn.receiver, head, std::string_view(conn.in).substr(end + 4, length));
      conn.in.erase(0, end + 4 + length);
      if (refused) (void)!write(conn.fd, kRefusal, sizeof(kRefusal) - 1);
      else (void)!write(conn.fd, kAnswer, sizeof(kAnswer) - 1);
    }
  }

  static std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
  }

  void record(int receiver, const std::string& head, std::string_view body) {
    const int64_t now = wallMs();
    std::lock_guard lock(mutex_);
    ReceiverStats& stats = stats_[static_cast<size_t>(receiver)];
    const size_t at = head.find("\nx-event-number:");
    if (at == std::string::npos) {
      ++stats.handshakes;  // handshake or heartbeat
      return;
    }
    const int64_t number = std::stoll(head.substr(at + 16));
    if (!stats.numbers.insert(number).second) {
      ++stats.duplicates;
      return;
    }
    if (number < stats.highest) ++stats.out_of_order;
    stats.highest = std::max(stats.highest, number);
    ++stats.notifications;
    if (stats.first_ms == 0) stats.first_ms = now;
    stats.last_ms = now;
    static constexpr std::string_view kStamp = "\"name\":\"timestamp\",\"valueInstant\":\"";
    const size_t stamp = body.find(kStamp);
    if (stamp != std::string_view::npos) {
      const int64_t committed = instantMs(std::string(body.substr(stamp + kStamp.size(), 24)).c_str());
      if (committed > 0) stats.latencies_ms.push_back(now - committed);
    }
  }

  int epoll_ = -1;
  std::vector<uint16_t> ports_;
  std::map<int, Conn> conns_;  // only the epoll thread touches it
  std::mutex mutex_;
  std::vector<ReceiverStats> stats_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> refusing_{false};
  std::thread thread_;
};

struct Answer {
  int status = 0;
  std::string body;
};

Answer post(Poco::Net::HTTPClientSession& session, const std::string& path, const std::string& content_type,
            const std::string& body) {
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, path, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentType(content_type);
  request.setContentLength64(static_cast<Poco::Int64>(body.size()));
  request.setKeepAlive(true);
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  Answer answer;
  Poco::StreamCopier::copyToString(session.receiveResponse(response), answer.body);
  answer.status = response.getStatus();
  return answer;
}

std::string subscription(uint16_t receiver_port, const std::string& payload) {
  const std::string backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
  return R"({"resourceType": "Subscription", "status": "requested", "reason": "fan-out benchmark",
  "criteria": "https://fhir.alignment-gateway.org/SubscriptionTopic/claim-received",
  "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:)" +
         std::to_string(receiver_port) + R"(/notify", "payload": "application/fhir+json",
    "_payload": {"extension": [{"url": ")" +
         backport + R"(backport-payload-content", "valueCode": ")" + payload + R"("}]}}})";
}

// A lakeshore-medicaid claim file (payer-formats.md) of `count` one-line claims with unique ids;
// members cycle through 50, so after the first rounds only the Claim is new.
std::string claimFile(const std::string& run, int64_t first, int count) {
  std::string csv =
      "claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,billing_npi,"
      "billing_tin,dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,dx_1,dx_2,dx_3,dx_4,"
      "units,charge_amount,paid_amount,claim_status\r\n";
  char line[512];
  for (int i = 0; i < count; ++i) {
    const int64_t n = first + i;
    std::snprintf(line, sizeof(line),
                  "LC-%s-%lld,1,LMC%08lld,Okafor,Adaeze,19610319,F,1467583922,1093817462,361234567,"
                  "202610%02lld,202610%02lld,11,99214,25,,E119,I10,,,1,180.00,112.50,P\r\n",
                  run.c_str(), static_cast<long long>(n), static_cast<long long>(n % 50),
                  static_cast<long long>(1 + n % 28), static_cast<long long>(1 + n % 28));
    csv += line;
  }
  return csv;
}

double percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  return static_cast<double>(sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())))]);
}

int usage() {
  std::cerr << "usage: fanout_bench --port GATEWAY_PORT [--subscribers N] [--rate EVENTS_PER_S] [--seconds S]\n"
               "                    [--batch CLAIMS_PER_FILE] [--payload id-only|full-resource|empty] [--senders N]\n"
               "                    [--backlog 1]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string value = argv[i + 1];
    if (flag == "--port") options.port = std::stoi(value);
    else if (flag == "--subscribers") options.subscribers = std::stoi(value);
    else if (flag == "--rate") options.rate = std::stod(value);
    else if (flag == "--seconds") options.seconds = std::stod(value);
    else if (flag == "--batch") options.batch = std::max(1, std::stoi(value));
    else if (flag == "--senders") options.senders = std::max(1, std::stoi(value));
    else if (flag == "--payload") options.payload = value;
    else if (flag == "--backlog") options.backlog = value == "1" || value == "true";
    else return usage();
  }
  Receivers receivers(options.subscribers);
  Poco::Net::HTTPClientSession control("127.0.0.1", static_cast<Poco::UInt16>(options.port));
  control.setTimeout(Poco::Timespan(30, 0));
  for (int i = 0; i < options.subscribers; ++i) {
    Answer created = post(control, "/fhir/Subscription", "application/fhir+json", subscription(receivers.port(i), options.payload));
    if (created.status != 201) {
      std::cerr << "fanout_bench: Subscription not created: " << created.status << " " << created.body << "\n";
      return 1;
    }
  }
  const auto handshake_deadline = Clock::now() + std::chrono::seconds(30);
  while (receivers.withStats([](auto& stats) {
    return std::any_of(stats.begin(), stats.end(), [](const ReceiverStats& s) { return s.handshakes == 0; });
  })) {
    if (Clock::now() > handshake_deadline) {
      std::cerr << "fanout_bench: not every subscriber got its handshake\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the subscriptions turn active

  receivers.refuse(options.backlog);
  // Open loop: file i is due at start + i * batch / rate (with --backlog: as fast as taken).
  const std::string run = std::to_string(wallMs());
  const auto files = static_cast<int64_t>(options.rate * options.seconds / options.batch);
  const auto interval = std::chrono::duration<double>(options.batch / options.rate);
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> accepted{0};
  std::atomic<int64_t> errors{0};
  std::mutex ingest_mutex;
  std::vector<int64_t> ingest_ms;
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(100);
  std::vector<std::thread> senders;
  for (int s = 0; s < options.senders; ++s) {
    senders.emplace_back([&] {
      Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(options.port));
      session.setKeepAlive(true);
      session.setTimeout(Poco::Timespan(60, 0));
      std::vector<int64_t> mine;
      for (int64_t index = next++; index < files; index = next++) {
        const auto scheduled = start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(index));
        const std::string body = claimFile(run, index * options.batch, options.batch);
        if (!options.backlog) std::this_thread::sleep_until(scheduled);
        try {
          Answer answer = post(session, "/ingest/claims/lakeshore-medicaid", "text/csv", body);
          if (answer.status == 200 && answer.body.find("\"rejected\":0") != std::string::npos) accepted += options.batch;
          else if (errors++ == 0) std::cerr << "fanout_bench: ingest answered " << answer.status << " " << answer.body << "\n";
        } catch (const Poco::Exception& error) {
          if (errors++ == 0) std::cerr << "fanout_bench: ingest failed: " << error.displayText() << "\n";
          session.reset();
        }
        mine.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - scheduled).count());
      }
      std::lock_guard lock(ingest_mutex);
      ingest_ms.insert(ingest_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& sender : senders) sender.join();
  const double load_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const int64_t load_end_wall = wallMs();
  const int64_t expected = accepted.load() * options.subscribers;
  auto received = [&] {
    return receivers.withStats([](auto& stats) {
      int64_t total = 0;
      for (const ReceiverStats& s : stats) total += s.notifications;
      return total;
    });
  };
  const int64_t at_load_end = received();
  receivers.refuse(false);
  const auto drain_deadline = Clock::now() + std::chrono::seconds(60);
  while (received() < expected && Clock::now() < drain_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));

  receivers.withStats([&](auto& stats) {
    std::vector<int64_t> latencies;
    int64_t total = 0, duplicates = 0, out_of_order = 0, gaps = 0, first = INT64_MAX, last = 0;
    for (const ReceiverStats& s : stats) {
      total += s.notifications;
      duplicates += s.duplicates;
      out_of_order += s.out_of_order;
      gaps += s.highest - static_cast<int64_t>(s.numbers.size());
      if (s.first_ms != 0) first = std::min(first, s.first_ms);
      last = std::max(last, s.last_ms);
      latencies.insert(latencies.end(), s.latencies_ms.begin(), s.latencies_ms.end());
    }
    std::sort(latencies.begin(), latencies.end());
    std::sort(ingest_ms.begin(), ingest_ms.end());
    const double delivery_seconds = last > first ? static_cast<double>(last - first) / 1000 : 0;
    std::printf(
        "{\"mode\": \"%s\", \"subscribers\": %d, \"payload\": \"%s\", \"targetEventsPerS\": %.0f, \"claimsPerFile\": %d, \"seconds\": %.1f, "
        "\"eventsAccepted\": %lld, \"ingestErrors\": %lld, \"ingestedEventsPerS\": %.1f, \"ingestP99Ms\": %.0f, "
        "\"notificationsExpected\": %lld, \"notificationsReceived\": %lld, \"duplicates\": %lld, \"outOfOrder\": %lld, "
        "\"gaps\": %lld, \"receivedDuringLoad\": %lld, \"notificationsPerSDuringLoad\": %.0f, "
        "\"notificationsPerSFirstToLast\": %.0f, \"drainAfterLoadMs\": %lld, "
        "\"latencyMs\": {\"p50\": %.0f, \"p90\": %.0f, \"p99\": %.0f, \"p999\": %.0f, \"max\": %.0f}}\n",
        options.backlog ? "backlog drain" : "open loop", options.subscribers, options.payload.c_str(), options.rate, options.batch, load_seconds,
        static_cast<long long>(accepted.load()), static_cast<long long>(errors.load()),
        static_cast<double>(accepted.load()) / load_seconds, percentile(ingest_ms, 0.99), static_cast<long long>(expected),
        static_cast<long long>(total), static_cast<long long>(duplicates), static_cast<long long>(out_of_order),
        static_cast<long long>(gaps), static_cast<long long>(at_load_end),
        static_cast<double>(at_load_end) / load_seconds,
        delivery_seconds > 0 ? static_cast<double>(total) / delivery_seconds : 0.0,
        static_cast<long long>(std::max<int64_t>(0, last - load_end_wall)), percentile(latencies, 0.5),
        percentile(latencies, 0.9), percentile(latencies, 0.99), percentile(latencies, 0.999),
        latencies.empty() ? 0.0 : static_cast<double>(latencies.back()));
    return 0;
  });
  return received() == expected && errors.load() == 0 ? 0 : 1;
}
