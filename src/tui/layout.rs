//! Screen geometry, shared by the views (where to draw) and `update` (what a click hit).
//! Pure functions of plain values (the terminal size, row counts, selections), so the
//! layout knows nothing of the state that holds them.

use ratatui::layout::Rect;

use super::tab::Tab;

/// Below this the dashboard shows "terminal too small" instead of its tabs.
pub const MIN_SIZE: (u16, u16) = (50, 12);

/// Width of the Logs tab's source list on a screen `screen_w` wide whose longest source name
/// is `longest` columns: the name and a line count of up to six digits, within 15 to 28
/// columns and a quarter of the screen (the lines need the room more).
pub fn log_sources_width(screen_w: u16, longest: usize) -> u16 {
    let want = (longest + 2 + 9).clamp(15, 28) as u16;
    want.min(screen_w / 4).max(10)
}

/// The whole screen.
pub fn screen(size: (u16, u16)) -> Rect {
    Rect::new(0, 0, size.0, size.1)
}

/// Tab bar, content, status bar.
pub fn frame(size: (u16, u16)) -> (Rect, Rect, Rect) {
    let s = screen(size);
    let tabs = Rect::new(0, 0, s.width, 1.min(s.height));
    let status = Rect::new(0, s.height.saturating_sub(1), s.width, 1.min(s.height));
    let content = Rect::new(0, 1, s.width, s.height.saturating_sub(2));
    (tabs, content, status)
}

/// The labels of the tab bar, with their x ranges.
pub fn tab_labels() -> Vec<(Tab, String, u16, u16)> {
    let mut x = 0u16;
    Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let label = format!(" {} {} ", i + 1, t.title());
            let start = x;
            x += label.chars().count() as u16 + 1;
            (*t, label, start, x - 1)
        })
        .collect()
}

/// The tab under a click on the tab bar.
pub fn tab_at(_size: (u16, u16), x: u16, y: u16) -> Option<Tab> {
    (y == 0).then(|| {
        tab_labels()
            .into_iter()
            .find(|(_, _, a, b)| x >= *a && x < *b)
            .map(|(t, ..)| t)
    })?
}

/// Exports tab: the groups table (as tall as `groups` rows need, at most half) and the
/// files table.
pub fn exports(size: (u16, u16), groups: usize) -> (Rect, Rect) {
    let (_, content, _) = frame(size);
    // No groups still gets a row: it says how to add one.
    let wanted = u16::try_from(groups.max(1))
        .unwrap_or(u16::MAX)
        .saturating_add(3);
    let groups_h = wanted.min(content.height / 2).max(3.min(content.height));
    let groups = Rect {
        height: groups_h,
        ..content
    };
    let files = Rect {
        y: content.y + groups_h,
        height: content.height - groups_h,
        ..content
    };
    (groups, files)
}

/// Schedules tab: the jobs table (as tall as `jobs` rows need, at most half) and the
/// details of the selected job.
pub fn schedules(size: (u16, u16), jobs: usize) -> (Rect, Rect) {
    let (_, content, _) = frame(size);
    let jobs_h = u16::try_from(jobs)
        .unwrap_or(u16::MAX)
        .saturating_add(3)
        .min(content.height / 2);
    let jobs = Rect {
        height: jobs_h,
        ..content
    };
    let details = Rect {
        y: content.y + jobs_h,
        height: content.height - jobs_h,
        ..content
    };
    (jobs, details)
}

/// The Releases tab's panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasesAreas {
    /// The services and their releases.
    pub list: Rect,
    /// The selected release's details (scrollable).
    pub detail: Rect,
    /// Its service's tasks, live.
    pub tasks: Rect,
    /// Its deploy log's last lines, when the terminal is wide enough.
    pub log: Option<Rect>,
}

/// Releases tab: the list on top (`list_lines` lines of services and releases); below it
/// the details, the tasks and (120 columns and more) the deploy log side by side.
pub fn releases(size: (u16, u16), list_lines: usize) -> ReleasesAreas {
    let (_, content, _) = frame(size);
    // As tall as its lines need (column header and borders too), at most 55%: the details
    // get the rest.
    let needed = list_lines.saturating_add(3);
    let list_h = (content.height * 11 / 20)
        .min(u16::try_from(needed).unwrap_or(u16::MAX))
        .max(5)
        .min(content.height);
    let list = Rect {
        height: list_h,
        ..content
    };
    let bottom = Rect {
        y: content.y + list_h,
        height: content.height - list_h,
        ..content
    };
    let w = bottom.width;
    let (detail_w, tasks_w) = if w >= 120 {
        (w * 2 / 5, w * 3 / 10)
    } else {
        (w / 2, w - w / 2)
    };
    let detail = Rect {
        width: detail_w,
        ..bottom
    };
    let tasks = Rect {
        x: bottom.x + detail_w,
        width: tasks_w,
        ..bottom
    };
    let log = (w >= 120).then(|| Rect {
        x: tasks.x + tasks_w,
        width: w - detail_w - tasks_w,
        ..bottom
    });
    ReleasesAreas {
        list,
        detail,
        tasks,
        log,
    }
}

/// Data rows a bordered table with a header shows in `area`.
pub fn table_rows(area: Rect) -> usize {
    area.height.saturating_sub(3) as usize
}

/// The first row shown so that `selected` is visible in `visible` rows.
pub fn scroll_offset(selected: usize, visible: usize) -> usize {
    if visible == 0 {
        selected
    } else {
        selected.saturating_sub(visible - 1)
    }
}

/// Rows a full-height overlay (the help, the diff) shows inside its borders.
pub fn overlay_rows_shown(size: (u16, u16)) -> usize {
    let (_, content, _) = frame(size);
    content.height.saturating_sub(2) as usize
}

/// Rows a page key moves.
pub fn page_rows(size: (u16, u16)) -> usize {
    (size.1.saturating_sub(6) as usize).max(1)
}

/// The data line (0 = the first below the header) of a bordered table with a header in
/// `area` under a click at (x, y), if the click is on one.
pub fn line_at(area: Rect, x: u16, y: u16) -> Option<usize> {
    let first = area.y + 2;
    let inside = x >= area.x
        && x < area.x + area.width
        && y >= first
        && y < area.y + area.height.saturating_sub(1);
    inside.then(|| (y - first) as usize)
}

/// The row under a click on a table in `area` scrolled to show row `selected`.
pub fn table_row_at(area: Rect, selected: usize, x: u16, y: u16) -> Option<usize> {
    line_at(area, x, y).map(|l| scroll_offset(selected, table_rows(area)) + l)
}
