//! Review golden snapshots: `cargo run -p golden -- review | accept [NAME...] | reject [NAME...]`.

use std::process::ExitCode;

use golden::{compare, pending, Golden};
use telescope::images::read_png;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let golden = Golden::new();
    let dir = &golden.snapshots;
    let Ok(list) = pending(dir) else {
        eprintln!("golden: cannot read {}", dir.display());
        return ExitCode::from(2);
    };
    let chosen = |names: &[String]| {
        list.iter()
            .filter(|p| names.is_empty() || names.contains(&p.name))
            .collect::<Vec<_>>()
    };
    match args.first().map(String::as_str) {
        None | Some("review") => {
            if list.is_empty() {
                println!("no snapshots waiting for review in {}", dir.display());
            }
            for p in &list {
                let what = match (&p.current, read_png(&p.new)) {
                    (Some(cur), Ok(new)) => match read_png(cur) {
                        Ok(old) => compare(&new, &old, golden.tolerance).to_string(),
                        Err(e) => format!("current snapshot unreadable: {e}"),
                    },
                    (None, Ok(_)) => "new snapshot".to_owned(),
                    (_, Err(e)) => format!("unreadable: {e}"),
                };
                println!("{}: {what}", p.name);
                println!("  new:      {}", p.new.display());
                if let Some(cur) = &p.current {
                    println!("  current:  {}", cur.display());
                    println!(
                        "  diff:     {}",
                        golden
                            .reports
                            .join(format!("{}.diff.png", p.name))
                            .display()
                    );
                }
            }
            if !list.is_empty() {
                println!("\naccept with `cargo run -p golden -- accept [NAME...]`, reject with `... reject [NAME...]`");
            }
            ExitCode::SUCCESS
        }
        Some("accept") => {
            for p in chosen(&args[1..]) {
                let target = dir.join(format!("{}.png", p.name));
                if let Err(e) = std::fs::rename(&p.new, &target) {
                    eprintln!("golden: cannot accept {}: {e}", p.name);
                    return ExitCode::from(2);
                }
                println!("accepted {}", p.name);
            }
            ExitCode::SUCCESS
        }
        Some("reject") => {
            for p in chosen(&args[1..]) {
                if let Err(e) = std::fs::remove_file(&p.new) {
                    eprintln!("golden: cannot reject {}: {e}", p.name);
                    return ExitCode::from(2);
                }
                println!("rejected {}", p.name);
            }
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("golden: unknown command `{other}`; use review, accept [NAME...] or reject [NAME...]");
            ExitCode::from(2)
        }
    }
}
