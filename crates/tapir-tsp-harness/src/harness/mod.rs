//! The harness proper (Windows only): plays TAPISRV for tapir.tsp.

mod journal;
mod peer;
mod report;
mod scenarios;
mod tapi;
mod tsp;
mod var_struct;

use report::Report;
use tsp::Tsp;

const USAGE: &str = "usage: tapir-tsp-harness <tapir_tsp.dll> --server ws://HOST:PORT --token TOKEN \
[--provider ID] [--log-dir DIR] [--log-level LEVEL] [--expect-line PERMANENT_ID,EXTENSION,NAME]... [--no-peer]";

/// The command line.
pub struct Options {
    pub dll: String,
    pub server: String,
    pub token: String,
    pub provider: u32,
    pub log_dir: Option<String>,
    pub log_level: String,
    /// The lines tapir lists for the token, in line id order.
    pub expected_lines: Vec<ExpectedLine>,
    /// No test on the other end of stdin/stdout: skip what needs it (outside call, restart).
    pub no_peer: bool,
}

pub struct ExpectedLine {
    pub permanent_id: u32,
    pub extension: String,
    pub name: String,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let dll = args.next().ok_or("the DLL's path is missing")?;
        let mut options = Options {
            dll,
            server: String::new(),
            token: String::new(),
            provider: 1,
            log_dir: None,
            log_level: "debug".into(),
            expected_lines: Vec::new(),
            no_peer: false,
        };
        while let Some(flag) = args.next() {
            if flag == "--no-peer" {
                options.no_peer = true;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--server" => options.server = value,
                "--token" => options.token = value,
                "--provider" => {
                    options.provider = value
                        .parse()
                        .map_err(|_| format!("--provider {value}: not a number"))?
                }
                "--log-dir" => options.log_dir = Some(value),
                "--log-level" => options.log_level = value,
                "--expect-line" => options.expected_lines.push(ExpectedLine::parse(&value)?),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if options.server.is_empty() || options.token.is_empty() {
            return Err("--server and --token are required".into());
        }
        Ok(options)
    }

    /// The command line for `TapirConfigureW`.
    pub fn configure_command_line(&self) -> String {
        let mut words = vec![
            "--provider".to_owned(),
            self.provider.to_string(),
            "--server".to_owned(),
            self.server.clone(),
            "--token".to_owned(),
            self.token.clone(),
            "--log-level".to_owned(),
            self.log_level.clone(),
        ];
        if let Some(dir) = &self.log_dir {
            words.extend(["--log-dir".to_owned(), dir.clone()]);
        }
        words
            .iter()
            .map(|word| quote(word))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes a word for CommandLineToArgvW when it has blanks (backslashes are literal there
/// unless they precede a quote, which these words do not contain).
fn quote(word: &str) -> String {
    if word.contains([' ', '\t']) {
        format!("\"{word}\"")
    } else {
        word.to_owned()
    }
}

impl ExpectedLine {
    fn parse(text: &str) -> Result<ExpectedLine, String> {
        let mut parts = text.splitn(3, ',');
        let (Some(id), Some(extension), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "--expect-line {text:?}: want PERMANENT_ID,EXTENSION,NAME"
            ));
        };
        Ok(ExpectedLine {
            permanent_id: id
                .parse()
                .map_err(|_| format!("--expect-line {text:?}: {id} is not a number"))?,
            extension: extension.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Runs everything and returns the exit code: 0 all passed, 1 a check failed, 2 bad usage,
/// 3 the DLL could not be loaded.
pub fn run() -> i32 {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            return 2;
        }
    };
    let tsp = match Tsp::load(&options.dll) {
        Ok(tsp) => tsp,
        Err(why) => {
            println!("FAIL load {}: {why}", options.dll);
            println!("0 passed, 1 failed");
            return 3;
        }
    };
    println!("loaded {}", options.dll);
    let mut report = Report::default();
    scenarios::run_all(tsp, &options, &mut report);
    report.finish()
}
