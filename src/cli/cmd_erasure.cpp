// facevault erase, export and expire: a subject's erasure (with its receipt), the access
// export, and the retention sweep.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "service/render.h"

namespace fs = std::filesystem;

namespace fv::cli {

void add_erasure_commands(CLI::App& app, int& exit_code) {
  {
    struct A { std::string subject, reason = "erasure request"; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = app.add_subcommand("erase", "erase a subject: templates, images, bases, subject key; wipes freed pages; prints a receipt");
    // Positional, or --subject as in `basis add`, `enroll` and `audit show`.
    cmd->add_option("subject,--subject", a->subject, "external reference (or vault id)")->required();
    cmd->add_option("--reason", a->reason, "recorded in the receipt and the audit log");
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault erase S-1 --reason \"erasure request 2024-17\"", "facevault erase --subject S-1 --json"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto receipt, svc.erase(actor, a->subject, a->reason));
      print_receipt(receipt, a->c.json);
      return Status::ok();
    }));
  }
  {
    struct A { std::string subject, images_dir; bool templates = false; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = app.add_subcommand("export", "access export: everything held about a subject as JSON, with the audit entries naming them");
    cmd->add_option("subject,--subject", a->subject, "external reference (or vault id)")->required();
    cmd->add_option("--images-dir", a->images_dir, "also write the kept images (decrypted) into this folder");
    cmd->add_flag("--with-templates", a->templates, "include the template values");
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault export S-1 --images-dir out/S-1 > S-1.json"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      std::optional<fs::path> dir;
      if (!a->images_dir.empty()) dir = a->images_dir;
      FV_ASSIGN_OR_RETURN(auto exported, svc.export_subject(actor, a->subject, a->templates, dir));
      // Without --json the same document, indented for reading.
      if (a->c.json) print_json(exported);
      else std::cout << exported.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return Status::ok();
    }));
  }
  {
    struct A { std::string as_of; bool dry_run = false; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = app.add_subcommand("expire", "erase every subject whose retention has ended or whose lawful bases have all lapsed, and what each expired basis covered");
    cmd->add_option("--as-of", a->as_of, "evaluate at this date instead of now (YYYY-MM-DD or timestamp, UTC; a future date only with --dry-run)");
    cmd->add_flag("--dry-run", a->dry_run, "list what is due without erasing");
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault expire --dry-run --as-of 2030-01-01", "facevault expire --json"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      std::optional<std::string> as_of;
      if (!a->as_of.empty()) as_of = a->as_of;
      const auto report = svc.expire(actor, as_of, a->dry_run);
      FV_RETURN_IF_ERROR(print_result(a->c, report, service::render::expire_report,
                          [](const service::ExpireReport& r) {
                            std::printf("%s %zu subject(s) as of %s\n", r.dry_run ? "due:" : "erased", r.erased.size(),
                                        r.as_of.c_str());
                            for (auto& e : r.erased)
                              std::printf("  %s (vault id %s): %s\n", e.subject_ref.c_str(), e.subject_uid.c_str(),
                                          e.reason.c_str());
                            if (!r.bases_lapsed.empty())
                              std::printf("%s the rows of %zu expired basis(es) whose subject stays\n",
                                          r.dry_run ? "due:" : "erased", r.bases_lapsed.size());
                            for (auto& e : r.bases_lapsed)
                              std::printf("  %s (vault id %s): %s, %lld template(s), %lld source image(s)\n",
                                          e.subject_ref.c_str(), e.subject_uid.c_str(), e.reason.c_str(),
                                          static_cast<long long>(e.faces), static_cast<long long>(e.images));
                            for (auto& [s, why] : r.failed_shards)
                              std::printf("  shard %d failed: %s\n", s, why.c_str());
                          }));
      // A cluster's run that failed on some shards ran on the others: reported, then failed.
      if (report.is_ok() && !report->failed_shards.empty())
        return unavailable("the retention run failed on " + std::to_string(report->failed_shards.size()) +
                           " shard(s); the next run completes them");
      return Status::ok();
    }));
  }
}

}  // namespace fv::cli
