// Table pieces shared by the pages: a header row from column descriptions, and the
// Edit/Delete buttons of a row. Layout only; the rows' data belongs to the pages.

/** One column header: its label, numeric columns right-aligned, `hidden` labels for screen readers only. */
export interface Column {
  label: string;
  numeric?: boolean;
  hidden?: boolean;
}

/** The `<thead>` of a table. */
export function TableHead(props: { columns: readonly Column[] }) {
  return (
    <thead>
      <tr>
        {props.columns.map((column) => (
          <th key={column.label} scope="col" class={column.numeric ? 'n' : undefined}>
            {column.hidden ? <span class="sr-only">{column.label}</span> : column.label}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** A row's Edit and Delete buttons; `what` names the row for screen readers ("peer rs1"). */
export function RowActions(props: { what: string; onEdit: () => void; onDelete: () => void }) {
  return (
    <td class="actions">
      <button type="button" class="btn btn-small" onClick={props.onEdit} aria-label={`Edit ${props.what}`}>
        Edit
      </button>
      <button
        type="button"
        class="btn btn-small btn-danger-ghost"
        onClick={props.onDelete}
        aria-label={`Delete ${props.what}`}
      >
        Delete
      </button>
    </td>
  );
}
