// facevault optout add | check: the do-not-enroll registry.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "service/render.h"

namespace fv::cli {

void add_optout_commands(CLI::App& app, int& exit_code) {
  auto* opt = app.add_subcommand("optout", "the do-not-enroll registry (encrypted templates only)");
  opt->require_subcommand(1);
  set_examples(opt, {"facevault optout add selfie.jpg", "facevault optout check --role auditor"});
  {
    struct A { std::string image; int face = -1; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = opt->add_subcommand("add", "add the face in a photo to the do-not-enroll list");
    cmd->add_option("image", a->image, "photo of the person opting out")->required();
    cmd->add_option("--face", a->face, "which face when the photo has several");
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault optout add selfie.jpg --json"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto bytes, read_file(a->image));
      return print_result(a->c, svc.optout_add(actor, std::move(bytes), a->face), service::render::optout,
                          [](const service::OptoutResult& r) {
                            std::printf("opt-out %s recorded (only an encrypted template is kept)\n", r.optout_uid.c_str());
                            if (r.enrolled_match_count > 0)
                              std::printf("  %lld enrolled subject(s) match it: an auditor lists them with "
                                          "`facevault optout check --role auditor`\n",
                                          static_cast<long long>(r.enrolled_match_count));
                          });
    }));
  }
  {
    auto c = std::make_shared<VaultOptions>();
    auto* cmd = opt->add_subcommand("check", "list enrolled subjects that match an opt-out");
    add_vault_options(cmd, *c);
    set_examples(cmd, {"facevault optout check --role auditor --actor dpo --json"});
    cmd->callback(vault_command(*c, exit_code, [c](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto r, svc.optout_check(actor));
      if (r.incomparable_optouts > 0)
        std::cerr << "facevault: WARNING: " << r.incomparable_optouts
                  << " opt-out(s) were made with another face model and are compared with nothing: they do NOT block "
                     "enrollment. Take them again from new photos with the current model.\n";
      if (c->json) {
        print_json(service::render::optout_check(r));
        return Status::ok();
      }
      if (r.matches.empty()) std::printf("no enrolled subject matches an opt-out\n");
      for (auto& x : r.matches)
        std::printf("%s (vault id %s) matches opt-out %s (similarity %.4f)\n", x.subject_ref.c_str(), x.subject_uid.c_str(),
                    x.optout_uid.c_str(), x.similarity);
      return Status::ok();
    }));
  }
}

}  // namespace fv::cli
