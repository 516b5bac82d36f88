// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "FHIR-specific extensions (FHIR R4 FHIRPath section)", the
// terminology part: subsumes(), subsumedBy() and the Terminology Service API through
// %terminologies (expand, lookup, validateVS, validateCS, subsumes, translate). The answers come
// from EvaluationContext hooks; a call that cannot be answered is an evaluation error naming why,
// never an empty result.

#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {

namespace {

const char* operationName(Fn fn) {
  switch (fn) {
    case Fn::kSubsumes: return "subsumes";
    case Fn::kSubsumedBy: return "subsumedBy";
    case Fn::kExpand: return "expand";
    case Fn::kLookup: return "lookup";
    case Fn::kValidateVS: return "validateVS";
    case Fn::kValidateCS: return "validateCS";
    case Fn::kTranslate: return "translate";
    default: return "";
  }
}

}  // namespace

Collection Evaluator::terminologyFunction(const Node& node, const Collection& focus) {
  const bool service = node.has_source && node.children[0]->op == Op::kVariable &&
                       node.children[0]->name == "terminologies";
  const std::string name = operationName(node.fn);
  const size_t argc = node.children.size() - (node.has_source ? 1 : 0);
  const size_t first = node.has_source ? 1 : 0;
  if (service) {
    if (node.fn == Fn::kSubsumedBy) {
      throw EvalError{"%terminologies has no subsumedBy(): use subsumes(system, coding1, coding2)"};
    }
    if (node.fn == Fn::kSubsumes && argc < 3) {
      throw EvalError{"%terminologies.subsumes() takes (system, coding1, coding2[, params])"};
    }
    if (!context_.terminologies) {
      throw EvalError{"%terminologies." + name + "(): no terminology service is available here"};
    }
    std::vector<Collection> args;
    args.reserve(argc);
    for (size_t i = 0; i < argc; ++i) args.push_back(evalArg(*node.children[first + i]));
    auto result = context_.terminologies(name, args);
    if (!result.ok()) throw EvalError{"%terminologies." + name + "(): " + result.message()};
    return {*result};
  }
  if (node.fn != Fn::kSubsumes && node.fn != Fn::kSubsumedBy) {
    throw EvalError{name + "() is a terminology service call: write %terminologies." + name + "(...)"};
  }
  if (argc != 1) throw EvalError{name + "() takes one argument (a Coding or CodeableConcept)"};
  // R4: "When invoked on a Coding-valued element and the given code is Coding-valued, returns
  // true if the source code is equivalent to the given code, or if the source code subsumes the
  // given code"; subsumedBy() is the converse. Empty input or argument: empty.
  const Item* source = singleton(focus, (name + "()").c_str());
  Collection argument = evalArg(*node.children[first]);
  const Item* given = singleton(argument, (name + "()").c_str());
  if (source == nullptr || given == nullptr) return {};
  if (!source->isNode() || !given->isNode()) {
    throw EvalError{name + "() needs Coding or CodeableConcept values"};
  }
  if (!context_.subsumes) {
    throw EvalError{name + "(): no terminology service is available here"};
  }
  auto result = node.fn == Fn::kSubsumes ? context_.subsumes(*source, *given) : context_.subsumes(*given, *source);
  if (!result.ok()) throw EvalError{name + "(): " + result.message()};
  return boolean(*result);
}

}  // namespace fhir::fhirpath
