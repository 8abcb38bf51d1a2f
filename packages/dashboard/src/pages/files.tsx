// Uploaded files (a job names them in file_ids and finds them at /uploads/<name>): upload, list, delete.
import type { FileInfo, FileList } from '@mags/api';
import { type FormEvent, useRef, useState } from 'react';
import { api, seg } from '../api';
import { bytes, relative, when } from '../format';
import { useAction, useResource } from '../resource';
import { DataTable, DeleteButton, Errors, Section, SubmitRow } from '../ui';

export function FilesPage() {
  const list = useResource<FileList>('/mags-files');
  const upload = useAction();
  const remove = useAction();
  const input = useRef<HTMLInputElement>(null);
  const [uploaded, setUploaded] = useState<FileInfo>();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const file = input.current?.files?.[0];
    if (!file) return;
    void upload.run(async () => {
      setUploaded(
        await api<FileInfo>('POST', `/mags-files?name=${encodeURIComponent(file.name)}`, undefined, { raw: file }),
      );
      if (input.current) input.current.value = '';
      list.reload();
    });
  };
  return (
    <>
      <h1>Files</h1>
      <Section title="Upload a file">
        <form onSubmit={submit} className="stack">
          <label htmlFor="upload-file">File (a job finds it at /uploads/&lt;name&gt;)</label>
          <input id="upload-file" type="file" ref={input} required />
          <SubmitRow id="upload" action={upload}>
            {upload.busy ? 'Uploading…' : 'Upload'}
          </SubmitRow>
          {uploaded ? (
            <p role="status">
              Uploaded {uploaded.name} ({bytes(uploaded.size)}), id <span className="mono">{uploaded.file_id}</span>.
            </p>
          ) : null}
        </form>
      </Section>
      <Section title="Your files">
        <Errors errors={[list.error, remove.error]} />
        <DataTable
          id="files-table"
          columns={['Name', 'Size', 'Uploaded', 'Id']}
          rows={list.data?.files}
          empty="No files."
          row={(f) => (
            <tr key={f.file_id}>
              <td>{f.name}</td>
              <td>{bytes(f.size)}</td>
              <td title={when(f.created_at)}>{relative(f.created_at)}</td>
              <td className="mono small" title={`sha256 ${f.sha256}`}>
                {f.file_id}
              </td>
              <td>
                <DeleteButton
                  confirm={`Delete ${f.name}`}
                  action={remove}
                  path={`/mags-files/${seg(f.file_id)}`}
                  then={list.reload}
                />
              </td>
            </tr>
          )}
        />
      </Section>
    </>
  );
}
