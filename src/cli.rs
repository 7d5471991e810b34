//! The `anjeon` command line: argument parsing and output formatting over the library.

use crate::answer::{Answerer, AskRequest, Role};
use crate::config::{AnswerMode, Config, SearchMode};
use crate::error::{Error, Result};
use crate::evaluate::Suite;
use crate::filter::{Access, SearchFilter};
use crate::index::{parse_date, Index, IngestEvent, SearchRequest};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "anjeon",
    version,
    about = "식품의약품 안전 질의응답 — Korean food and drug safety Q&A"
)]
pub struct Cli {
    /// Where indexes live (default: `data_dir` of anjeon.toml, else ./data).
    #[arg(long, global = true, env = "ANJEON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (default: ./anjeon.toml when present).
    #[arg(long, global = true, env = "ANJEON_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as text or as JSON objects (one per line, personal data redacted).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "ANJEON_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: crate::logs::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch and prepare the default models and dictionary into the cache.
    Setup,
    /// Index files or folders (recursively).
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Who may read these documents.
        #[arg(long, default_value = "public")]
        access: Access,
        /// Print one JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Search the indexed passages.
    Search {
        query: String,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long, value_enum)]
        mode: Option<SearchMode>,
        /// KEY=VALUE with KEY one of kind, law, doc, access, date_from, date_to; repeat
        /// kind or access to allow several values. Without access=…, only public passages.
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Answer a question from the indexed documents, citing them, or refuse.
    Ask {
        question: String,
        /// Who asks: public sees public documents only; official also internal ones.
        #[arg(long, value_enum, default_value = "public")]
        role: Role,
        /// Extractive or generative (default: answer.mode of the configuration).
        #[arg(long, value_enum)]
        mode: Option<AnswerMode>,
        /// An earlier question of the same conversation (repeat, oldest first): QUESTION
        /// may then be a follow-up such as "그럼 비용은요?".
        #[arg(long = "after", value_name = "EARLIER_QUESTION")]
        after: Vec<String>,
        /// Print the whole answer as one JSON object instead of streaming text.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web application and the OpenAI-compatible API.
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
    },
    /// Measure retrieval quality or search latency (prints figures; see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Score a model on the benchmark tasks and the assistant on a question set and
    /// red-team probes (`--suite rag`), write results.json, samples/ and report.html, and
    /// check the scores against a gate: exit code 0 when every gate threshold holds, 1 when
    /// one falls short, 2 for bad arguments or a malformed gate file. `--compare A B` sets
    /// two results side by side instead.
    Eval(EvalArgs),
    /// Make sign-in tokens for officials and admins (the config stores only their hashes).
    Token {
        #[command(subcommand)]
        which: TokenCommand,
    },
    /// Verify that the manifest, tantivy and the vector store agree (after recovering
    /// from an interrupted ingest); exits non-zero when they do not.
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new random token once, and the line to add to `auth.tokens` in anjeon.toml.
    New {
        #[arg(long, value_enum)]
        role: Role,
        /// Who holds it (shown in the audit log).
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// recall@k and MRR of the gold document per ranking mode on a question set.
    Retrieval {
        /// Question set in dev.jsonl format.
        #[arg(long)]
        qa: PathBuf,
        /// Folder to ingest first (incrementally) into the data directory.
        #[arg(long)]
        corpus: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        #[arg(long)]
        json: bool,
    },
    /// Search latency p50/p99 per mode on an index grown to at least `--passages`
    /// passages by replicating the corpus (use an empty --data-dir).
    Search {
        #[arg(long)]
        qa: PathBuf,
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        passages: usize,
        /// Times each question is asked per mode.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Grounded answers on a question set: hallucination rate, refusal recall, coverage,
    /// citation precision and latency (what `anjeon eval --suite rag` reports).
    Rag {
        #[arg(long)]
        qa: PathBuf,
        /// Extractive or generative (default: answer.mode of the configuration).
        #[arg(long, value_enum)]
        mode: Option<AnswerMode>,
        #[arg(long, value_enum, default_value = "public")]
        role: Role,
        #[arg(long)]
        json: bool,
    },
    /// Loopback load test: a server over a temporary index, N concurrent /api/ask streams
    /// plus /api/search traffic, bounded in time and requests; exits non-zero on any 5xx.
    Load {
        #[arg(long, default_value_t = 64)]
        streams: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// /api/search requests per second besides the streams.
        #[arg(long, default_value_t = 10.0)]
        search_rps: f64,
        /// Most requests in all.
        #[arg(long, default_value_t = 100_000)]
        max_requests: usize,
        /// Files or folders to index (default: a statute and the safety letters).
        #[arg(long)]
        corpus: Vec<PathBuf>,
        /// Questions in dev.jsonl format (default: a built-in set).
        #[arg(long)]
        qa: Option<PathBuf>,
        /// Keep the per-client rate limit (all load comes from 127.0.0.1).
        #[arg(long)]
        keep_rate_limit: bool,
        #[arg(long)]
        json: bool,
    },
    /// Prefill and decode speed of the LLM engine: tokens/s and time to first token.
    Generate {
        /// GGUF checkpoint (default: the configured model).
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 1024)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        gen_tokens: usize,
        /// Engine threads (default: the configured number).
        #[arg(long)]
        threads: Option<usize>,
        /// Measured runs; the median is reported.
        #[arg(long, default_value_t = 3)]
        repetitions: usize,
        #[arg(long)]
        json: bool,
    },
}

impl clap::ValueEnum for Access {
    fn value_variants<'a>() -> &'a [Self] {
        &[Access::Public, Access::Internal]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Runs the command line; the exit code says whether the command did its job.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn execute(cli: Cli) -> Result<ExitCode> {
    crate::logs::init(cli.log_format);
    let config = load_config(&cli)?;
    match cli.command {
        Command::Setup => {
            prepare(&config)?;
            println!(
                "ready: models and dictionary are in {}",
                config.cache_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest {
            paths,
            access,
            json,
        } => {
            prepare(&config)?;
            let index = Index::open(&config)?;
            let bar = progress_bar();
            let report = index.ingest(&paths, access, &|event| match event {
                IngestEvent::Found(n) => bar.set_length(n as u64),
                IngestEvent::File(path) => {
                    bar.set_message(
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    );
                    bar.inc(1);
                }
                IngestEvent::Finished(..) => {}
            })?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                println!(
                    "ingested {} file(s), {} passage(s); {} unchanged; {} skipped",
                    report.files,
                    report.chunks,
                    report.unchanged,
                    report.skipped.len()
                );
                for s in &report.skipped {
                    println!("  skipped {}: {}", s.path, s.error);
                }
            }
            let nothing = report.files == 0 && report.unchanged == 0;
            Ok(if nothing {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Search {
            query,
            top_k,
            mode,
            filters,
            json,
        } => {
            let filter = parse_filters(&filters)?;
            prepare(&config)?;
            let index = Index::open(&config)?;
            let request = SearchRequest {
                query,
                top_k: top_k.unwrap_or(config.search.top_k),
                mode: mode.unwrap_or(config.search.mode),
                lexical: config.search.lexical,
                filter,
            };
            let hits = index.search(&request)?;
            if json {
                println!("{}", serde_json::json!({ "hits": hits }));
            } else if hits.is_empty() {
                println!("검색 결과가 없습니다 (no results)");
            } else {
                for (i, h) in hits.iter().enumerate() {
                    println!(
                        "{:>2}. [{:.4}] {} — {} ({})",
                        i + 1,
                        h.score,
                        h.title,
                        h.locator,
                        h.doc
                    );
                    println!("    {}", one_line(&h.text, 160));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { which } => bench(&config, which),
        Command::Eval(args) => match eval(&config, args) {
            Err(e) if crate::evaluate::is_usage_error(&e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(2))
            }
            other => other,
        },
        Command::Ask {
            question,
            role,
            mode,
            after,
            json,
        } => {
            let mut config = config;
            if let Some(mode) = mode {
                config.answer.mode = mode;
            }
            prepare(&config)?;
            let index = Index::open(&config)?;
            let generator = load_generator(&config)?;
            let prompts = Answerer::load_prompts(&config.answer)?;
            let answerer = Answerer::new(
                &index,
                generator.as_ref().map(|g| g as &dyn crate::llm::Generator),
                prompts,
                config.answer.clone(),
            )?;
            let request = AskRequest {
                question,
                role,
                history: after
                    .into_iter()
                    .map(|question| crate::answer::Turn {
                        question,
                        answer: String::new(),
                    })
                    .collect(),
            };
            let answer = if json {
                answerer.answer(&request, &mut |_| true)?
            } else {
                use std::io::Write;
                let mut stdout = std::io::stdout();
                let answer = answerer.answer(&request, &mut |piece| {
                    let _ = write!(stdout, "{piece}");
                    let _ = stdout.flush();
                    true
                })?;
                println!();
                answer
            };
            if json {
                print_json(&answer)?;
            } else {
                for c in &answer.citations {
                    println!("[{}] {} — {} ({})", c.n, c.title, c.locator, c.doc);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { addr } => {
            prepare(&config)?;
            crate::server::serve(&config, addr)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            which: TokenCommand::New { role, name },
        } => {
            let (token, line) = crate::auth::new_token(role, &name)?;
            println!("token (give it to {name}; it is not stored anywhere): {token}");
            println!("add to anjeon.toml:\n[auth]\ntokens = [\"{line}\"]");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { json } => {
            let index = Index::open(&config)?;
            let problems = index.check_consistency()?;
            let entries = index.entries();
            let passages: usize = entries.iter().map(|(_, e)| e.passages.len()).sum();
            if json {
                let summary = serde_json::json!({
                    "documents": entries.len(),
                    "passages": passages,
                    "problems": problems,
                });
                println!("{summary}");
            } else {
                println!("{} document(s), {passages} passage(s)", entries.len());
                for p in &problems {
                    println!("  inconsistent: {p}");
                }
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| Error::Model(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// The language model's engine, started only when answers are generated.
fn load_generator(config: &Config) -> Result<Option<crate::llm::engine::Engine>> {
    if config.answer.mode != AnswerMode::Generative {
        return Ok(None);
    }
    let llm = config.llm.load(&config.cache_dir, None, None)?;
    crate::llm::engine::Engine::start(llm, Default::default()).map(Some)
}

fn bench(config: &Config, which: BenchCommand) -> Result<ExitCode> {
    if let BenchCommand::Load { .. } = which {
        return bench_load(which);
    }
    if let BenchCommand::Generate {
        model,
        prompt_tokens,
        gen_tokens,
        threads,
        repetitions,
        json,
    } = which
    {
        let llm = config.llm.load(&config.cache_dir, model, threads)?;
        let r = crate::bench::generate(&llm, prompt_tokens, gen_tokens, repetitions)?;
        if json {
            println!(
                "{}",
                serde_json::to_string(&r).map_err(|e| Error::Model(e.to_string()))?
            );
        } else {
            println!(
                "{}: prefill {:.1} tok/s ({} tokens), decode {:.1} tok/s ({} tokens), ttft {:.0} ms, {} threads",
                r.model, r.prefill_tok_s, r.prompt_tokens, r.decode_tok_s, r.gen_tokens, r.ttft_ms, r.threads
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    prepare(config)?;
    let mut index = Index::open(config)?;
    match which {
        BenchCommand::Retrieval {
            qa,
            corpus,
            top_k,
            json,
        } => {
            let questions = crate::bench::load_questions(&qa)?;
            if let Some(corpus) = corpus {
                index.ingest(&[corpus], Access::Public, &|_| {})?;
            }
            let scores = crate::bench::retrieval(&mut index, &questions, top_k)?;
            if json {
                println!("{}", serde_json::json!({ "retrieval": scores }));
            } else {
                println!("mode                   questions  recall@{top_k}(doc)  recall@{top_k}(quote)  MRR(doc)  mean ms");
                for s in &scores {
                    println!(
                        "{:<22} {:>9}  {:>15.3}  {:>17.3}  {:>8.3}  {:>7.1}",
                        s.mode, s.questions, s.recall_doc, s.recall_quote, s.mrr_doc, s.mean_ms
                    );
                }
            }
        }
        BenchCommand::Search {
            qa,
            corpus,
            passages,
            rounds,
            json,
        } => {
            let questions = crate::bench::load_questions(&qa)?;
            let per_copy = index.count_passages(std::slice::from_ref(&corpus));
            let copies = passages.div_ceil(per_copy.max(1)).max(1);
            // Copies reuse the parsed text and vectors of the first, so only one copy of
            // the corpus is embedded.
            index.ingest_copies(&[corpus], Access::Public, copies, &|_| {})?;
            return report_latency(&mut index, config, &questions, rounds, json);
        }
        BenchCommand::Rag {
            qa,
            mode,
            role,
            json,
        } => {
            let questions = crate::bench::load_questions(&qa)?;
            let mut config = config.clone();
            if let Some(mode) = mode {
                config.answer.mode = mode;
            }
            let generator = load_generator(&config)?;
            let answerer = Answerer::new(
                &index,
                generator.as_ref().map(|g| g as &dyn crate::llm::Generator),
                Answerer::load_prompts(&config.answer)?,
                config.answer.clone(),
            )?;
            let r = crate::answer::measure(&answerer, &questions, role)?;
            if json {
                print_json(&r)?;
            } else {
                for i in &r.items {
                    println!(
                        "{} answerable={} refused={} claims={} unfaithful={} citations={} gold={} {:.0} ms | {}",
                        i.id, i.answerable, i.refused, i.claims, i.unfaithful_claims,
                        i.citations, i.gold_citations, i.total_ms, one_line(&i.answer, 100)
                    );
                }
                println!(
                    "{:?} ({}): {} questions; hallucination {:.3} (unfaithful to citations {:.3}), refusal recall {:.3}, coverage {:.3}, citation precision {:.3}, false refusals {:.3}, answer correctness {:.3}; first text {:.0} ms, total mean {:.0} / p50 {:.0} / p95 {:.0} / max {:.0} ms",
                    r.mode, r.prompt_version, r.questions, r.hallucination_rate, r.unfaithful_rate,
                    r.refusal_recall,
                    r.coverage, r.citation_precision, r.false_refusals, r.answer_correctness,
                    r.mean_first_text_ms, r.mean_total_ms, r.p50_total_ms, r.p95_total_ms,
                    r.max_total_ms
                );
            }
        }
        BenchCommand::Generate { .. } | BenchCommand::Load { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_load(which: BenchCommand) -> Result<ExitCode> {
    let BenchCommand::Load {
        streams,
        duration,
        search_rps,
        max_requests,
        corpus,
        qa,
        keep_rate_limit,
        json,
    } = which
    else {
        unreachable!("called for bench load only")
    };
    let corpus = if corpus.is_empty() {
        let docs = PathBuf::from("../shared/corpus/docs");
        vec![
            docs.join("statutes/식품위생분야종사자의건강진단규칙.md"),
            docs.join("mfds_data/mfds_safety_letters_subset.json"),
        ]
    } else {
        corpus
    };
    let options = crate::loadtest::LoadOptions {
        streams,
        duration: std::time::Duration::from_secs(duration),
        search_rps,
        max_requests,
        corpus,
        qa,
        keep_rate_limit,
        config: std::env::var_os("ANJEON_CONFIG").map(PathBuf::from),
    };
    let r = crate::loadtest::run(&options)?;
    if json {
        print_json(&r)?;
    } else {
        println!(
            "{} streams + {} search/s for {:.1} s over {} passages: {} served ({} asks, {} searches)",
            r.streams, r.search_rps, r.duration_s, r.passages, r.served, r.asks.count, r.searches.count
        );
        for (name, l) in [("ask", &r.asks), ("search", &r.searches), ("ttft", &r.ttft)] {
            println!(
                "  {name:<7} p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        println!(
            "  429: {}  503: {}  5xx: {}  transport errors: {}  peak RSS {:.0} MiB  statuses {:?}",
            r.rate_limited_429,
            r.unavailable_503,
            r.server_errors_5xx,
            r.transport_errors,
            r.peak_rss_mb,
            r.status
        );
    }
    Ok(if r.server_errors_5xx == 0 && r.transport_errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Comma-separated task names (see eval/tasks/); `rag` names the RAG eval.
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// A named group of tasks, added to --tasks.
    #[arg(long, value_enum)]
    suite: Option<Suite>,
    /// GGUF checkpoint (default: the configured model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Documents per task: a number (the first N) or `quick` (each task's quick subset,
    /// spread over its data). Default: all.
    #[arg(long)]
    limit: Option<String>,
    /// Few-shot examples per prompt for tasks that have a few-shot source.
    #[arg(long)]
    num_fewshot: Option<usize>,
    /// Folder for results.json and samples/; a run into the same folder resumes
    /// (default: <data dir>/eval/<model file name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Thresholds per task and metric (TOML, e.g. eval/gate.toml).
    #[arg(long)]
    gate: Option<PathBuf>,
    /// Folder the task files' data paths are relative to.
    #[arg(long, default_value = "../shared/bench")]
    data_root: PathBuf,
    /// Engine threads (default: the configured number).
    #[arg(long)]
    threads: Option<usize>,
    /// The rag suite's question set in dev.jsonl format (default: eval.qa of the
    /// configuration; one of the two is needed).
    #[arg(long)]
    qa: Option<PathBuf>,
    /// The rag suite's red-team probes (default: the built-in eval/probes.toml).
    #[arg(long)]
    probes: Option<PathBuf>,
    /// How the rag suite's answers are made (default: answer.mode of the configuration).
    #[arg(long, value_enum)]
    mode: Option<AnswerMode>,
    /// Instead of running: compare two results.json files, per task and metric A, B, B − A
    /// and whether the difference is significant (paired on samples/ when both have them).
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with_all = ["tasks", "suite"])]
    compare: Vec<PathBuf>,
    #[arg(long)]
    json: bool,
}

fn eval(config: &Config, args: EvalArgs) -> Result<ExitCode> {
    use anjeon_eval::{Gate, Limit, Outcome, Results, RunConfig};
    if !args.compare.is_empty() {
        return compare(&args.compare, args.json);
    }
    let plan = crate::evaluate::plan(&args.tasks, args.suite)?;
    let limit = match args.limit.as_deref().map(str::trim) {
        None => Limit::All,
        Some("quick") => Limit::Quick,
        Some(n) => Limit::First(n.parse().map_err(|_| {
            Error::InvalidInput(format!("--limit {n}: expected a number or `quick`"))
        })?),
    };
    // Malformed inputs are reported before a model is loaded or anything is scored.
    let gate = args.gate.as_deref().map(Gate::load).transpose()?;
    let mut config = config.clone();
    if let Some(mode) = args.mode {
        config.answer.mode = mode;
    }
    let rag_inputs = if plan.rag {
        let qa = args
            .qa
            .clone()
            .or_else(|| (!config.eval.qa.is_empty()).then(|| PathBuf::from(&config.eval.qa)))
            .ok_or_else(|| {
                Error::InvalidInput(
                    "the rag suite needs a question set: --qa FILE (dev.jsonl format, e.g. \
                     ../shared/qa/dev.jsonl) or eval.qa in anjeon.toml"
                        .into(),
                )
            })?;
        if !qa.is_file() {
            return Err(Error::InvalidInput(format!(
                "--qa {}: no such file",
                qa.display()
            )));
        }
        anjeon_eval::load_questions(&qa)?;
        let probes = match &args.probes {
            Some(p) if !p.is_file() => {
                return Err(Error::InvalidInput(format!(
                    "--probes {}: no such file",
                    p.display()
                )))
            }
            Some(p) => anjeon_eval::ProbeSet::load(p)?,
            None => anjeon_eval::ProbeSet::builtin()?,
        };
        Some((qa, probes))
    } else {
        None
    };
    // The model is loaded only when something uses it: benchmark tasks, generative answers.
    let needs_model =
        !plan.tasks.is_empty() || (plan.rag && config.answer.mode == AnswerMode::Generative);
    let (engine, model) = if needs_model {
        let path = match &args.model {
            Some(p) => p.clone(),
            None => config.llm.model_path(&config.cache_dir)?,
        };
        if !path.is_file() {
            return Err(Error::InvalidInput(format!(
                "--model {}: no such file",
                path.display()
            )));
        }
        let model = crate::evaluate::model_info(&path)?;
        let llm = config
            .llm
            .load(&config.cache_dir, Some(path), args.threads)?;
        let engine = crate::llm::engine::Engine::start(llm, Default::default())?;
        (Some(engine), model)
    } else {
        let model = anjeon_eval::ModelInfo {
            id: "extractive".into(),
            sha256: None,
        };
        (None, model)
    };
    let out_dir = args
        .out
        .unwrap_or_else(|| config.data_dir.join("eval").join(&model.id));
    let bar = progress_bar();
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<28} {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut show = |p: &anjeon_eval::Progress| {
        if p.done == 0 {
            bar.reset();
            bar.set_length(p.total as u64);
            bar.set_message(p.task.to_string());
        }
        bar.set_position(p.done as u64);
        if p.resumed > 0 {
            bar.set_message(format!("{} ({} resumed)", p.task, p.resumed));
        }
    };
    let mut results = match &engine {
        Some(engine) if !plan.tasks.is_empty() => {
            let run_config = RunConfig {
                data_root: args.data_root.clone(),
                out_dir: out_dir.clone(),
                model: model.clone(),
                limit,
                num_fewshot: args.num_fewshot,
            };
            crate::evaluate::run_benchmarks(engine, &plan.tasks, &run_config, &mut show)?
        }
        _ => Results::new(model),
    };
    let mut rag_samples = Vec::new();
    if let Some((qa, probes)) = &rag_inputs {
        let rag_plan = crate::evaluate::rag::RagPlan {
            qa,
            limit: match limit {
                Limit::First(n) => Some(n),
                Limit::All | Limit::Quick => None,
            },
            probes,
            role: Role::Public,
        };
        let generator = engine.as_ref().map(|e| e as &dyn crate::llm::Generator);
        let outcome = crate::evaluate::rag::run(&config, generator, &rag_plan, &mut show)?;
        anjeon_eval::rag::write_samples(&out_dir.join("samples/rag.jsonl"), &outcome.samples)?;
        anjeon_eval::rag::add_to_results(
            &mut results,
            &outcome.metrics,
            outcome.question_set_size,
            outcome.config,
        );
        rag_samples = outcome.samples;
        std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
        results.write(&out_dir.join("results.json"))?;
    }
    bar.finish_and_clear();
    let report = gate.as_ref().map(|g| g.check(&results));
    let passed = report.as_ref().is_none_or(|r| r.passed());
    anjeon_eval::report::write_report(&out_dir, &results, report.as_ref(), &rag_samples)?;
    if args.json {
        let checks: Vec<serde_json::Value> = report
            .iter()
            .flat_map(|r| &r.checks)
            .map(|c| {
                serde_json::json!({
                    "task": c.threshold.task,
                    "metric": c.threshold.metric,
                    "min": c.threshold.min,
                    "max": c.threshold.max,
                    "value": c.value,
                    "outcome": match c.outcome {
                        Outcome::Pass => "pass",
                        Outcome::Fail => "fail",
                        Outcome::Missing => "missing",
                        Outcome::NotRun => "not_run",
                    },
                })
            })
            .collect();
        let gate_json = report
            .as_ref()
            .map(|_| serde_json::json!({ "passed": passed, "checks": checks }));
        println!(
            "{}",
            serde_json::json!({
                "out": out_dir,
                "results": results,
                "gate": gate_json,
                "report": out_dir.join("report.html"),
            })
        );
    } else {
        println!(
            "{:<26} {:<20} {:>9} {:>9} {:>6}",
            "task", "metric", "value", "± stderr", "n"
        );
        for (task, metrics) in &results.results {
            let n = results.n_samples.get(task).map_or(0, |s| s.effective);
            for (name, value) in metrics {
                if name.ends_with("_stderr") || name.ends_with("_ci95") {
                    continue;
                }
                let stderr = metrics
                    .get(&format!("{name}_stderr"))
                    .and_then(serde_json::Value::as_f64)
                    .map_or_else(|| "—".to_string(), |s| format!("{s:.4}"));
                println!(
                    "{task:<26} {name:<20} {:>9.4} {stderr:>9} {n:>6}",
                    value.as_f64().unwrap_or(f64::NAN)
                );
            }
        }
        for leaked in probe_leaks(&rag_samples) {
            println!("  leak: {leaked}");
        }
        println!("results: {}", out_dir.join("results.json").display());
        println!("report:  {}", out_dir.join("report.html").display());
        if let Some(report) = &report {
            for check in &report.checks {
                println!("  {check}");
            }
            let short = report.shortfalls().count();
            if short == 0 {
                println!("gate passed");
            } else {
                println!("gate FAILED: {short} threshold(s) not met");
            }
        }
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per leak of a red-team probe, for the text output.
fn probe_leaks(samples: &[anjeon_eval::RagSample]) -> Vec<String> {
    samples
        .iter()
        .filter_map(anjeon_eval::RagSample::probe)
        .flat_map(|p| {
            p.leaks
                .iter()
                .map(move |l| format!("{} ({}): {:?} {}", p.id, p.attack, l.kind, l.detail))
        })
        .collect()
}

/// `anjeon eval --compare A B`: two runs side by side.
fn compare(paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    use anjeon_eval::compare::{compare, Run};
    let load = |p: &PathBuf| {
        if !p.is_file() {
            return Err(Error::InvalidInput(format!(
                "--compare {}: no such file",
                p.display()
            )));
        }
        Run::load(p).map_err(|e| Error::InvalidInput(format!("--compare: {e}")))
    };
    let (a, b) = (load(&paths[0])?, load(&paths[1])?);
    let rows = compare(&a, &b);
    if json {
        println!(
            "{}",
            serde_json::json!({ "a": a.path, "b": b.path, "alpha": anjeon_eval::compare::ALPHA, "comparisons": rows })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("A: {} ({})", a.path.display(), a.results.model.id);
    println!("B: {} ({})", b.path.display(), b.results.model.id);
    println!(
        "{:<26} {:<20} {:>9} {:>9} {:>9} {:>8}  test",
        "task", "metric", "A", "B", "B − A", "p"
    );
    let cell = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.4}"));
    for r in &rows {
        let test = match (r.test, r.paired) {
            (Some(t), Some(n)) => format!("{t:?} on {n} paired items"),
            (Some(t), None) => format!("{t:?}"),
            (None, _) => "—".to_string(),
        };
        println!(
            "{:<26} {:<20} {:>9} {:>9} {:>9} {:>8}  {test}{}",
            r.task,
            r.metric,
            cell(r.a),
            cell(r.b),
            cell(r.difference),
            cell(r.p_value),
            if r.significant { "  significant" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn report_latency(
    index: &mut Index,
    config: &Config,
    questions: &[crate::bench::Question],
    rounds: usize,
    json: bool,
) -> Result<ExitCode> {
    let (scores, embed) = crate::bench::search_latency(index, config, questions, rounds)?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "latency": scores, "query_embedding": embed })
        );
    } else {
        for s in scores.iter().chain([&embed]) {
            println!(
                "{:<16} passages={} queries={} p50={:.2} ms p99={:.2} ms",
                s.mode, s.passages, s.queries, s.p50_ms, s.p99_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prepares the default assets (instant once cached), with a spinner on a terminal.
fn prepare(config: &Config) -> Result<()> {
    let spinner = if std::io::stderr().is_terminal() {
        let s = ProgressBar::new_spinner();
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    } else {
        ProgressBar::hidden()
    };
    let result = crate::setup::prepare_all(config, &|step| {
        spinner.set_message(format!("preparing {}", step.name));
    });
    spinner.finish_and_clear();
    result
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// `--filter KEY=VALUE` flags → a filter; public access unless `access=` says otherwise.
pub fn parse_filters(filters: &[String]) -> Result<SearchFilter> {
    let mut f = SearchFilter::default();
    for raw in filters {
        let (key, value) = raw
            .split_once('=')
            .ok_or_else(|| Error::InvalidInput(format!("--filter {raw}: expected KEY=VALUE")))?;
        let value = value.trim().to_string();
        let date = |v: &str| {
            parse_date(v)
                .ok_or_else(|| Error::InvalidInput(format!("--filter {raw}: dates are YYYY-MM-DD")))
        };
        match key.trim() {
            "kind" => f.kinds.push(value),
            "law" => f.law = Some(value),
            "doc" => f.doc = Some(value),
            "access" => f.access.push(value.parse().map_err(Error::InvalidInput)?),
            "date_from" => f.date_from = Some(date(&value)?),
            "date_to" => f.date_to = Some(date(&value)?),
            other => {
                return Err(Error::InvalidInput(format!(
                    "--filter {other}=…: unknown key (kind, law, doc, access, date_from, date_to)"
                )))
            }
        }
    }
    if f.access.is_empty() {
        f.access.push(Access::Public);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_default_to_public() {
        let f = parse_filters(&["kind=statute".into(), "date_from=2025-01-01".into()]).unwrap();
        assert_eq!(f.access, vec![Access::Public]);
        assert_eq!(f.kinds, vec!["statute".to_string()]);
        assert_eq!(f.date_from, Some(20250101));
        assert!(parse_filters(&["color=red".into()]).is_err());
        assert!(parse_filters(&["law".into()]).is_err());
        let f = parse_filters(&["access=internal".into(), "access=public".into()]).unwrap();
        assert_eq!(f.access, vec![Access::Internal, Access::Public]);
    }
}
