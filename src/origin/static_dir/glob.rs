//! The globs of cache rules: `?`, `*` (within a path segment) and `**` (across segments),
//! over the whole decoded URL path.

/// One glob element.
#[derive(Debug, Clone, Copy)]
enum Tok {
    /// A literal character, or `None` for `?`: any one character but `/`.
    Char(Option<char>),
    /// `*`: any run of characters without `/`; `Run(true)` is `**`, which may cross `/`.
    Run(bool),
}

/// A glob over the whole URL path, matched in O(pattern × path) time.
#[derive(Debug, Clone)]
pub(super) struct Glob(Vec<Tok>);

impl Glob {
    pub(super) fn new(pattern: &str) -> Self {
        let mut toks = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            toks.push(match c {
                '*' => Tok::Run(chars.next_if_eq(&'*').is_some()),
                '?' => Tok::Char(None),
                c => Tok::Char(Some(c)),
            });
            while c == '*' && chars.next_if_eq(&'*').is_some() {} // `***` is `**`
        }
        Glob(toks)
    }

    /// Tracks where in the path each pattern prefix can end, one token at a time.
    pub(super) fn matches(&self, path: &str) -> bool {
        let path: Vec<char> = path.chars().collect();
        let n = path.len();
        let (mut cur, mut next) = (vec![false; n + 1], vec![false; n + 1]);
        cur[0] = true;
        for &tok in &self.0 {
            match tok {
                Tok::Char(want) => {
                    next[0] = false;
                    for i in 0..n {
                        let fits = want.map_or(path[i] != '/', |c| path[i] == c);
                        next[i + 1] = cur[i] && fits;
                    }
                }
                Tok::Run(cross) => {
                    let mut reach = false;
                    for j in 0..=n {
                        reach |= cur[j];
                        next[j] = reach;
                        reach &= cross || path.get(j) != Some(&'/');
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
            if !cur.contains(&true) {
                return false;
            }
        }
        cur[n]
    }
}
