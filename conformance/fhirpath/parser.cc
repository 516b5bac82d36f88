// SPDX-License-Identifier: Apache-2.0
// Lexer and recursive-descent parser: FHIRPath text -> AST (internal.h).

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "conformance/fhirpath/internal.h"

namespace fhir::fhirpath {
namespace {

// 2^31: the largest integer literal, allowed only as the operand of unary minus.
constexpr long long kIntegerLiteralLimit = 2147483648LL;

constexpr FunctionInfo kFunctions[] = {
    {"empty", Fn::kEmpty, 0, 0},
    {"exists", Fn::kExists, 0, 1},
    {"all", Fn::kAll, 1, 1},
    {"allTrue", Fn::kAllTrue, 0, 0},
    {"anyTrue", Fn::kAnyTrue, 0, 0},
    {"allFalse", Fn::kAllFalse, 0, 0},
    {"anyFalse", Fn::kAnyFalse, 0, 0},
    {"subsetOf", Fn::kSubsetOf, 1, 1},
    {"supersetOf", Fn::kSupersetOf, 1, 1},
    {"count", Fn::kCount, 0, 0},
    {"distinct", Fn::kDistinct, 0, 0},
    {"isDistinct", Fn::kIsDistinct, 0, 0},
    {"where", Fn::kWhere, 1, 1},
    {"select", Fn::kSelect, 1, 1},
    {"repeat", Fn::kRepeat, 1, 1},
    {"ofType", Fn::kOfType, 1, 1},
    {"single", Fn::kSingle, 0, 0},
    {"first", Fn::kFirst, 0, 0},
    {"last", Fn::kLast, 0, 0},
    {"tail", Fn::kTail, 0, 0},
    {"skip", Fn::kSkip, 1, 1},
    {"take", Fn::kTake, 1, 1},
    {"intersect", Fn::kIntersect, 1, 1},
    {"exclude", Fn::kExclude, 1, 1},
    {"union", Fn::kUnion, 1, 1},
    {"combine", Fn::kCombine, 1, 1},
    {"iif", Fn::kIif, 2, 3},
    {"toBoolean", Fn::kToBoolean, 0, 0},
    {"convertsToBoolean", Fn::kConvertsToBoolean, 0, 0},
    {"toInteger", Fn::kToInteger, 0, 0},
    {"convertsToInteger", Fn::kConvertsToInteger, 0, 0},
    {"toDecimal", Fn::kToDecimal, 0, 0},
    {"convertsToDecimal", Fn::kConvertsToDecimal, 0, 0},
    {"toString", Fn::kToString, 0, 0},
    {"convertsToString", Fn::kConvertsToString, 0, 0},
    {"toDate", Fn::kToDate, 0, 0},
    {"convertsToDate", Fn::kConvertsToDate, 0, 0},
    {"toDateTime", Fn::kToDateTime, 0, 0},
    {"convertsToDateTime", Fn::kConvertsToDateTime, 0, 0},
    {"toTime", Fn::kToTime, 0, 0},
    {"convertsToTime", Fn::kConvertsToTime, 0, 0},
    {"toQuantity", Fn::kToQuantity, 0, 1},
    {"convertsToQuantity", Fn::kConvertsToQuantity, 0, 1},
    {"indexOf", Fn::kIndexOf, 1, 1},
    {"substring", Fn::kSubstring, 1, 2},
    {"startsWith", Fn::kStartsWith, 1, 1},
    {"endsWith", Fn::kEndsWith, 1, 1},
    {"contains", Fn::kContainsStr, 1, 1},
    {"upper", Fn::kUpper, 0, 0},
    {"lower", Fn::kLower, 0, 0},
    {"replace", Fn::kReplace, 2, 2},
    {"matches", Fn::kMatches, 1, 1},
    {"matchesFull", Fn::kMatchesFull, 1, 1},
    {"replaceMatches", Fn::kReplaceMatches, 2, 2},
    {"length", Fn::kLength, 0, 0},
    {"toChars", Fn::kToChars, 0, 0},
    {"split", Fn::kSplit, 1, 1},
    {"join", Fn::kJoin, 0, 1},
    {"trim", Fn::kTrim, 0, 0},
    {"encode", Fn::kEncode, 1, 1},
    {"decode", Fn::kDecode, 1, 1},
    {"escape", Fn::kEscape, 1, 1},
    {"unescape", Fn::kUnescape, 1, 1},
    {"abs", Fn::kAbs, 0, 0},
    {"ceiling", Fn::kCeiling, 0, 0},
    {"exp", Fn::kExp, 0, 0},
    {"floor", Fn::kFloor, 0, 0},
    {"ln", Fn::kLn, 0, 0},
    {"log", Fn::kLog, 1, 1},
    {"power", Fn::kPower, 1, 1},
    {"round", Fn::kRound, 0, 1},
    {"sqrt", Fn::kSqrt, 0, 0},
    {"truncate", Fn::kTruncate, 0, 0},
    {"children", Fn::kChildren, 0, 0},
    {"descendants", Fn::kDescendants, 0, 0},
    {"trace", Fn::kTrace, 1, 2},
    {"now", Fn::kNow, 0, 0},
    {"timeOfDay", Fn::kTimeOfDay, 0, 0},
    {"today", Fn::kToday, 0, 0},
    {"is", Fn::kIs, 1, 1},
    {"as", Fn::kAs, 1, 1},
    {"type", Fn::kType, 0, 0},
    {"not", Fn::kNot, 0, 0},
    {"aggregate", Fn::kAggregate, 1, 2},
    {"sort", Fn::kSort, 0, 8},
    {"lowBoundary", Fn::kLowBoundary, 0, 1},
    {"highBoundary", Fn::kHighBoundary, 0, 1},
    {"comparable", Fn::kComparable, 1, 1},
    {"precision", Fn::kPrecision, 0, 0},
    {"resolve", Fn::kResolve, 0, 0},
    {"extension", Fn::kExtension, 1, 1},
    {"conformsTo", Fn::kConformsTo, 1, 1},
    {"memberOf", Fn::kMemberOf, 1, 1},
    {"hasValue", Fn::kHasValue, 0, 0},
    {"htmlChecks", Fn::kHtmlChecks, 0, 0},
    {"getValue", Fn::kGetValue, 0, 0},
    // subsumes(code) on a Coding/CodeableConcept, or %terminologies.subsumes(system, coding1,
    // coding2[, params]); the other five only as %terminologies.<name>(...).
    {"subsumes", Fn::kSubsumes, 1, 4},
    {"subsumedBy", Fn::kSubsumedBy, 1, 1},
    {"expand", Fn::kExpand, 1, 2},
    {"lookup", Fn::kLookup, 1, 2},
    {"validateVS", Fn::kValidateVS, 2, 3},
    {"validateCS", Fn::kValidateCS, 2, 3},
    {"translate", Fn::kTranslate, 2, 3},
    {"sum", Fn::kSum, 0, 0},
    {"min", Fn::kMin, 0, 0},
    {"max", Fn::kMax, 0, 0},
    {"avg", Fn::kAvg, 0, 0},
};

enum class Tok { kEnd, kIdent, kQuotedIdent, kString, kNumber, kDate, kTime, kVariable, kSpecial, kSymbol };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier/string contents (unescaped), number text, symbol
  size_t offset = 0;
};

struct SyntaxError {
  std::string message;
  size_t offset;
};

bool isIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool isIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  std::vector<Token> run() {
    std::vector<Token> tokens;
    for (;;) {
      skipSpaceAndComments();
      Token token;
      token.offset = pos_;
      if (pos_ >= text_.size()) {
        tokens.push_back(token);
        return tokens;
      }
      char c = text_[pos_];
      if (isIdentStart(c)) {
        size_t start = pos_;
        while (pos_ < text_.size() && isIdentChar(text_[pos_])) ++pos_;
        token.kind = Tok::kIdent;
        token.text = std::string(text_.substr(start, pos_ - start));
      } else if (c == '`') {
        token.kind = Tok::kQuotedIdent;
        token.text = readQuoted('`');
      } else if (c == '\'') {
        token.kind = Tok::kString;
        token.text = readQuoted('\'');
      } else if (isDigit(c)) {
        token.kind = Tok::kNumber;
        token.text = readNumber();
      } else if (c == '@') {
        ++pos_;
        if (pos_ < text_.size() && text_[pos_] == 'T') {
          ++pos_;
          token.kind = Tok::kTime;
          token.text = readTime();
        } else {
          token.kind = Tok::kDate;
          token.text = readDateTime();
        }
      } else if (c == '%') {
        ++pos_;
        token.kind = Tok::kVariable;
        if (pos_ < text_.size() && text_[pos_] == '`') {
          token.text = readQuoted('`');
        } else if (pos_ < text_.size() && text_[pos_] == '\'') {
          token.text = readQuoted('\'');
        } else {
          size_t start = pos_;
          while (pos_ < text_.size() && (isIdentChar(text_[pos_]) || text_[pos_] == '-')) ++pos_;
          if (start == pos_) throw SyntaxError{"'%' must be followed by a name", token.offset};
          token.text = std::string(text_.substr(start, pos_ - start));
        }
      } else if (c == '$') {
        ++pos_;
        size_t start = pos_;
        while (pos_ < text_.size() && isIdentChar(text_[pos_])) ++pos_;
        token.kind = Tok::kSpecial;
        token.text = std::string(text_.substr(start, pos_ - start));
        if (token.text != "this" && token.text != "index" && token.text != "total") {
          throw SyntaxError{"unknown special variable '$" + token.text + "'", token.offset};
        }
      } else {
        token.kind = Tok::kSymbol;
        static constexpr std::string_view kTwo[] = {"<=", ">=", "!=", "!~"};
        bool two = false;
        for (auto op : kTwo) {
          if (text_.substr(pos_, 2) == op) {
            token.text = std::string(op);
            pos_ += 2;
            two = true;
            break;
          }
        }
        if (!two) {
          static constexpr std::string_view kOne = ".[](),+-*/&|<>=~{}";
          if (kOne.find(c) == std::string_view::npos) {
            throw SyntaxError{std::string("unexpected character '") + c + "'", pos_};
          }
          token.text = std::string(1, c);
          ++pos_;
        }
      }
      tokens.push_back(std::move(token));
    }
  }

 private:
  void skipSpaceAndComments() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++pos_;
      } else if (text_.substr(pos_, 2) == "//") {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else if (text_.substr(pos_, 2) == "/*") {
        size_t end = text_.find("*/", pos_ + 2);
        if (end == std::string_view::npos) throw SyntaxError{"unterminated comment", pos_};
        pos_ = end + 2;
      } else {
        return;
      }
    }
  }

  std::string readQuoted(char quote) {
    size_t start = pos_;
    ++pos_;
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      char c = text_[pos_++];
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      char e = text_[pos_++];
      switch (e) {
        case '\'': case '"': case '`': case '\\': case '/': out.push_back(e); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (pos_ + 4 > text_.size()) throw SyntaxError{"bad \\u escape", pos_ - 2};
          unsigned code = static_cast<unsigned>(
              std::strtoul(std::string(text_.substr(pos_, 4)).c_str(), nullptr, 16));
          pos_ += 4;
          appendUtf8(code, out);
          break;
        }
        default:
          throw SyntaxError{std::string("invalid escape '\\") + e + "'", pos_ - 2};
      }
    }
    if (pos_ >= text_.size()) throw SyntaxError{"unterminated string or identifier", start};
    ++pos_;
    return out;
  }

  static void appendUtf8(unsigned code, std::string& out) {
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  size_t digits(size_t max_count) {
    size_t count = 0;
    while (pos_ < text_.size() && count < max_count && isDigit(text_[pos_])) {
      ++pos_;
      ++count;
    }
    return count;
  }

  std::string readNumber() {
    size_t start = pos_;
    digits(SIZE_MAX);
    if (pos_ + 1 < text_.size() && text_[pos_] == '.' && isDigit(text_[pos_ + 1])) {
      ++pos_;
      digits(SIZE_MAX);
    } else if (pos_ < text_.size() && text_[pos_] == 'L') {
      std::string out(text_.substr(start, pos_ - start));
      ++pos_;
      return out;
    }
    return std::string(text_.substr(start, pos_ - start));
  }

  // hh(:mm(:ss(.fff)?)?)?
  void timePart() {
    size_t start = pos_;
    if (digits(2) != 2) throw SyntaxError{"malformed time literal", start};
    if (pos_ + 2 < text_.size() + 0 && text_[pos_] == ':' && isDigit(text_[pos_ + 1])) {
      ++pos_;
      if (digits(2) != 2) throw SyntaxError{"malformed time literal", start};
      if (pos_ < text_.size() && text_[pos_] == ':' && pos_ + 1 < text_.size() &&
          isDigit(text_[pos_ + 1])) {
        ++pos_;
        if (digits(2) != 2) throw SyntaxError{"malformed time literal", start};
        if (pos_ + 1 < text_.size() && text_[pos_] == '.' && isDigit(text_[pos_ + 1])) {
          ++pos_;
          digits(SIZE_MAX);
        }
      }
    }
  }

  std::string readTime() {
    size_t start = pos_;
    timePart();
    return std::string(text_.substr(start, pos_ - start));
  }

  std::string readDateTime() {
    size_t start = pos_;
    if (digits(4) != 4) throw SyntaxError{"malformed date literal", start - 1};
    if (pos_ + 1 < text_.size() && text_[pos_] == '-' && isDigit(text_[pos_ + 1])) {
      ++pos_;
      if (digits(2) != 2) throw SyntaxError{"malformed date literal", start};
      if (pos_ + 1 < text_.size() && text_[pos_] == '-' && isDigit(text_[pos_ + 1])) {
        ++pos_;
        if (digits(2) != 2) throw SyntaxError{"malformed date literal", start};
      }
    }
    if (pos_ < text_.size() && text_[pos_] == 'T') {
      ++pos_;
      if (pos_ < text_.size() && isDigit(text_[pos_])) {
        timePart();
        if (pos_ < text_.size() && text_[pos_] == 'Z') {
          ++pos_;
        } else if (pos_ + 5 < text_.size() + 0 && (text_[pos_] == '+' || text_[pos_] == '-') &&
                   isDigit(text_[pos_ + 1]) && isDigit(text_[pos_ + 2]) &&
                   text_[pos_ + 3] == ':') {
          pos_ += 4;
          if (digits(2) != 2) throw SyntaxError{"malformed timezone", start};
        }
      }
    }
    return std::string(text_.substr(start, pos_ - start));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

bool isCalendarWord(std::string_view word) {
  static constexpr std::string_view kWords[] = {
      "year", "years", "month", "months", "week", "weeks", "day", "days", "hour", "hours",
      "minute", "minutes", "second", "seconds", "millisecond", "milliseconds"};
  for (auto candidate : kWords) {
    if (candidate == word) return true;
  }
  return false;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::unique_ptr<Node> parseAll() {
    auto node = parseExpression(0);
    if (peek().kind != Tok::kEnd) {
      throw SyntaxError{"unexpected '" + peek().text + "'", peek().offset};
    }
    return node;
  }

 private:
  const Token& peek(size_t ahead = 0) const {
    size_t index = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[index];
  }
  Token next() { return tokens_[std::min(pos_++, tokens_.size() - 1)]; }
  bool isSymbol(std::string_view symbol, size_t ahead = 0) const {
    return peek(ahead).kind == Tok::kSymbol && peek(ahead).text == symbol;
  }
  void expectSymbol(std::string_view symbol) {
    if (!isSymbol(symbol)) {
      std::string got = peek().kind == Tok::kEnd ? "end of expression" : "'" + peek().text + "'";
      throw SyntaxError{"expected '" + std::string(symbol) + "' but found " + got, peek().offset};
    }
    ++pos_;
  }

  // Binary operator at the current token: its Op and precedence (higher binds tighter).
  bool binaryOp(Op& op, int& precedence) const {
    const Token& token = peek();
    if (token.kind == Tok::kSymbol) {
      const std::string& s = token.text;
      if (s == "*") { op = Op::kMul; precedence = 10; return true; }
      if (s == "/") { op = Op::kDiv; precedence = 10; return true; }
      if (s == "+") { op = Op::kPlus; precedence = 9; return true; }
      if (s == "-") { op = Op::kMinus; precedence = 9; return true; }
      if (s == "&") { op = Op::kConcat; precedence = 9; return true; }
      if (s == "|") { op = Op::kUnion; precedence = 7; return true; }
      if (s == "<") { op = Op::kLess; precedence = 6; return true; }
      if (s == ">") { op = Op::kGreater; precedence = 6; return true; }
      if (s == "<=") { op = Op::kLessEq; precedence = 6; return true; }
      if (s == ">=") { op = Op::kGreaterEq; precedence = 6; return true; }
      if (s == "=") { op = Op::kEq; precedence = 5; return true; }
      if (s == "~") { op = Op::kEquiv; precedence = 5; return true; }
      if (s == "!=") { op = Op::kNotEq; precedence = 5; return true; }
      if (s == "!~") { op = Op::kNotEquiv; precedence = 5; return true; }
      return false;
    }
    if (token.kind != Tok::kIdent) return false;
    const std::string& s = token.text;
    if (s == "div") { op = Op::kIntDiv; precedence = 10; return true; }
    if (s == "mod") { op = Op::kMod; precedence = 10; return true; }
    if (s == "is") { op = Op::kIs; precedence = 8; return true; }
    if (s == "as") { op = Op::kAs; precedence = 8; return true; }
    if (s == "in") { op = Op::kIn; precedence = 4; return true; }
    if (s == "contains") { op = Op::kContains; precedence = 4; return true; }
    if (s == "and") { op = Op::kAnd; precedence = 3; return true; }
    if (s == "or") { op = Op::kOr; precedence = 2; return true; }
    if (s == "xor") { op = Op::kXor; precedence = 2; return true; }
    if (s == "implies") { op = Op::kImplies; precedence = 1; return true; }
    return false;
  }

  std::unique_ptr<Node> parseExpression(int min_precedence) {
    // Nesting is bounded so that hostile input cannot exhaust the stack.
    if (++nesting_ > kMaxNesting) {
      throw SyntaxError{"expression nested too deeply", peek().offset};
    }
    struct Unnest {
      int& nesting;
      ~Unnest() { --nesting; }
    } unnest{nesting_};
    auto left = parseUnary();
    for (;;) {
      Op op;
      int precedence;
      if (!binaryOp(op, precedence) || precedence < min_precedence) return left;
      size_t offset = peek().offset;
      ++pos_;
      auto node = std::make_unique<Node>();
      node->op = op;
      node->offset = offset;
      node->children.push_back(std::move(left));
      if (op == Op::kIs || op == Op::kAs) {
        parseTypeSpecifier(*node);
      } else {
        node->children.push_back(parseExpression(precedence + 1));
      }
      left = std::move(node);
    }
  }

  void parseTypeSpecifier(Node& node) {
    Token first = next();
    if (first.kind != Tok::kIdent && first.kind != Tok::kQuotedIdent) {
      throw SyntaxError{"expected a type name", first.offset};
    }
    if (isSymbol(".") && (peek(1).kind == Tok::kIdent || peek(1).kind == Tok::kQuotedIdent)) {
      ++pos_;
      node.type_namespace = first.text;
      node.name = next().text;
    } else {
      node.name = first.text;
    }
  }

  std::unique_ptr<Node> parseUnary() {
    if (isSymbol("+") || isSymbol("-")) {
      if (++nesting_ > kMaxNesting) {
        throw SyntaxError{"expression nested too deeply", peek().offset};
      }
      struct Unnest {
        int& nesting;
        ~Unnest() { --nesting; }
      } unnest{nesting_};
      Token sign = next();
      auto operand = parseUnary();
      if (sign.text == "+") return operand;
      // Fold negative numeric literals so that -1 and -0.5 keep their literal type.
      // -(-2147483648) is not folded: its evaluation reports the overflow.
      if (operand->op == Op::kLiteral && operand->children.empty() &&
          !(operand->literal.kind() == Item::Kind::kInteger &&
            operand->literal.integerValue() < -kIntegerLiteralLimit + 1) &&
          (operand->literal.kind() == Item::Kind::kInteger ||
           operand->literal.kind() == Item::Kind::kDecimal ||
           operand->literal.kind() == Item::Kind::kQuantity) &&
          operand->literal.kind() != Item::Kind::kBoolean) {
        const Item& lit = operand->literal;
        if (lit.kind() == Item::Kind::kInteger) {
          operand->literal = Item::integer(-lit.integerValue());
        } else if (lit.kind() == Item::Kind::kDecimal) {
          // Literal units are below 2^63 in magnitude, so negation always succeeds.
          operand->literal = Item::decimal(*lit.decimalValue().negated());
        } else {
          Quantity q = lit.quantityValue();
          q.value = *q.value.negated();
          operand->literal = Item::quantity(q);
        }
        return operand;
      }
      auto node = std::make_unique<Node>();
      node->op = Op::kNegate;
      node->offset = sign.offset;
      node->children.push_back(std::move(operand));
      return node;
    }
    return parsePostfix(parseTerm());
  }

  std::unique_ptr<Node> parsePostfix(std::unique_ptr<Node> node) {
    for (;;) {
      if (isSymbol(".")) {
        ++pos_;
        // `x.is Type` / `x.as Type`: not in the grammar, but published IG invariants use it and
        // the reference engine reads it as `x is Type`.
        if (peek().kind == Tok::kIdent && (peek().text == "is" || peek().text == "as") &&
            (peek(1).kind == Tok::kIdent || peek(1).kind == Tok::kQuotedIdent)) {
          auto type_op = std::make_unique<Node>();
          type_op->op = peek().text == "is" ? Op::kIs : Op::kAs;
          type_op->offset = next().offset;
          type_op->children.push_back(std::move(node));
          parseTypeSpecifier(*type_op);
          node = std::move(type_op);
          continue;
        }
        auto invocation = parseInvocation();
        invocation->has_source = true;
        invocation->children.insert(invocation->children.begin(), std::move(node));
        node = std::move(invocation);
      } else if (isSymbol("[")) {
        size_t offset = next().offset;
        auto indexer = std::make_unique<Node>();
        indexer->op = Op::kIndexer;
        indexer->offset = offset;
        indexer->children.push_back(std::move(node));
        indexer->children.push_back(parseExpression(0));
        expectSymbol("]");
        node = std::move(indexer);
      } else {
        return node;
      }
    }
  }

  // identifier | function call | $this/$index/$total (after '.' or at term start)
  std::unique_ptr<Node> parseInvocation() {
    Token token = next();
    auto node = std::make_unique<Node>();
    node->offset = token.offset;
    if (token.kind == Tok::kSpecial) {
      node->op = token.text == "this" ? Op::kThis : token.text == "index" ? Op::kIndex : Op::kTotal;
      return node;
    }
    if (token.kind != Tok::kIdent && token.kind != Tok::kQuotedIdent) {
      std::string got = token.kind == Tok::kEnd ? "end of expression" : "'" + token.text + "'";
      throw SyntaxError{"expected an identifier but found " + got, token.offset};
    }
    node->name = token.text;
    if (token.kind == Tok::kIdent && isSymbol("(")) {
      ++pos_;
      node->op = Op::kFunction;
      const FunctionInfo* info = findFunction(node->name);
      if (info == nullptr) {
        throw SyntaxError{"unknown function '" + node->name + "'", token.offset};
      }
      node->fn = info->fn;
      int argc = 0;
      if (!isSymbol(")")) {
        for (;;) {
          node->children.push_back(parseExpression(0));
          ++argc;
          if (isSymbol(",")) {
            ++pos_;
            continue;
          }
          break;
        }
      }
      expectSymbol(")");
      if (argc < info->min_args || argc > info->max_args) {
        throw SyntaxError{"wrong number of arguments for " + node->name + "()", token.offset};
      }
      return node;
    }
    node->op = Op::kMember;
    return node;
  }

  std::unique_ptr<Node> parseTerm() {
    const Token& token = peek();
    auto node = std::make_unique<Node>();
    node->offset = token.offset;
    switch (token.kind) {
      case Tok::kEnd:
        throw SyntaxError{"unexpected end of expression", token.offset};
      case Tok::kString:
        node->literal = Item::string(next().text);
        return node;
      case Tok::kNumber: {
        std::string text = next().text;
        bool is_decimal = text.find('.') != std::string::npos;
        // Quantity: number followed by a unit string or a calendar keyword.
        if (peek().kind == Tok::kString ||
            (peek().kind == Tok::kIdent && isCalendarWord(peek().text))) {
          Quantity q;
          auto value = Decimal::parse(text);
          if (!value) throw SyntaxError{"number literal out of range", node->offset};
          q.value = *value;
          q.unit = next().text;
          node->literal = Item::quantity(std::move(q));
          return node;
        }
        if (is_decimal) {
          auto value = Decimal::parse(text);
          if (!value) throw SyntaxError{"decimal literal out of range", node->offset};
          node->literal = Item::decimal(*value);
        } else {
          // FHIRPath Integer is 32-bit; 2147483648 is allowed here for -2147483648 and refused
          // by prepare() when it is not negated.
          errno = 0;
          long long value = std::strtoll(text.c_str(), nullptr, 10);
          if (errno == ERANGE || value > kIntegerLiteralLimit) {
            throw SyntaxError{"integer literal out of range (FHIRPath Integer is 32-bit)",
                              node->offset};
          }
          node->literal = Item::integer(value);
        }
        return node;
      }
      case Tok::kDate: {
        std::string text = next().text;
        bool has_time = text.find('T') != std::string::npos;
        node->literal = has_time ? Item::dateTime(text) : Item::date(text);
        Item::Kind kind = has_time ? Item::Kind::kDateTime : Item::Kind::kDate;
        if (!parseDateTime(text, kind)) {
          throw SyntaxError{"invalid date/time literal '@" + text + "'", node->offset};
        }
        return node;
      }
      case Tok::kTime: {
        std::string text = next().text;
        if (!parseDateTime(text, Item::Kind::kTime)) {
          throw SyntaxError{"invalid time literal '@T" + text + "'", node->offset};
        }
        node->literal = Item::time(text);
        return node;
      }
      case Tok::kVariable:
        node->op = Op::kVariable;
        node->name = next().text;
        return node;
      case Tok::kSpecial:
        return parseInvocation();
      case Tok::kSymbol:
        if (token.text == "(") {
          ++pos_;
          auto inner = parseExpression(0);
          expectSymbol(")");
          return inner;
        }
        if (token.text == "{") {
          ++pos_;
          expectSymbol("}");
          node->op = Op::kEmpty;
          return node;
        }
        throw SyntaxError{"unexpected '" + token.text + "'", token.offset};
      case Tok::kIdent:
        if (token.text == "true" || token.text == "false") {
          node->literal = Item::boolean(next().text == "true");
          return node;
        }
        return parseInvocation();
      case Tok::kQuotedIdent:
        return parseInvocation();
    }
    throw SyntaxError{"unexpected token", token.offset};
  }

  static constexpr int kMaxNesting = 200;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int nesting_ = 0;
};

// Precomputes what evaluation would otherwise redo on every call.
void prepare(Node& node) {
  if (node.op == Op::kLiteral && node.literal.kind() == Item::Kind::kInteger &&
      node.literal.integerValue() >= kIntegerLiteralLimit) {
    throw SyntaxError{"integer literal out of range (FHIRPath Integer is 32-bit)", node.offset};
  }
  if (node.op == Op::kLiteral) node.literal_collection = {node.literal};
  node.name_hash = TypeNode::hashName(node.name);
  if (node.op == Op::kFunction &&
      (node.fn == Fn::kMatches || node.fn == Fn::kMatchesFull || node.fn == Fn::kReplaceMatches)) {
    size_t pattern = node.has_source ? 1 : 0;
    if (pattern < node.children.size() && node.children[pattern]->op == Op::kLiteral &&
        node.children[pattern]->literal.kind() == Item::Kind::kString &&
        !node.children[pattern]->literal.text().empty()) {
      node.regex = tryMakeRegex(node.children[pattern]->literal.text());
    }
  }
  for (auto& child : node.children) prepare(*child);
}

}  // namespace

const FunctionInfo* findFunction(std::string_view name) {
  for (const auto& info : kFunctions) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

Result<ExpressionPtr> compile(std::string_view text, CompileError* detail) {
  try {
    Lexer lexer(text);
    std::vector<Token> tokens = lexer.run();
    // Long left-associative chains (a.a.a... or 1+1+...) nest the AST as deep as they are long;
    // bounding the length bounds the recursion of later passes and of the destructor.
    constexpr size_t kMaxTokens = 20000;
    if (tokens.size() > kMaxTokens) {
      throw SyntaxError{"expression too long", tokens[kMaxTokens].offset};
    }
    Parser parser(std::move(tokens));
    auto expression = std::make_shared<Expression>();
    expression->text = std::string(text);
    expression->root = parser.parseAll();
    prepare(*expression->root);
    return ExpressionPtr(std::move(expression));
  } catch (const SyntaxError& error) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < error.offset && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    if (detail != nullptr) {
      *detail = CompileError{error.message, error.offset, line, column};
    }
    return Error{"syntax error at " + std::to_string(line) + ":" + std::to_string(column) + ": " +
                 error.message};
  }
}

const std::string& expressionText(const Expression& expression) { return expression.text; }

}  // namespace fhir::fhirpath
